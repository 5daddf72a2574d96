"""A real rotation stack for unit tests: KVStore → Barrier → SqliteStorage, on a FakeClock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from vaultside.clock import FakeClock
from vaultside.crypto.barrier import Barrier
from vaultside.crypto.seal import FileSeal, init_key_file
from vaultside.kv.store import KVStore
from vaultside.rotation.service import RotationService
from vaultside.rotation.targets import TargetFactory
from vaultside.storage.sqlite import SqliteStorage

# 2023-11-14 22:13:20 UTC
START = 1_700_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def barrier(tmp_path: Path) -> AsyncIterator[Barrier]:
    init_key_file(tmp_path / "root.key")
    b = Barrier(SqliteStorage(tmp_path / "vs.db"), FileSeal(tmp_path / "root.key"))
    await b.open()
    await b.unseal()
    yield b
    await b.close()


@pytest.fixture
def kv(barrier: Barrier, clock: FakeClock) -> KVStore:
    return KVStore(barrier, clock=clock, default_max_versions=0)


@pytest.fixture
def service(kv: KVStore, barrier: Barrier, clock: FakeClock) -> RotationService:
    svc = RotationService(kv, barrier, TargetFactory(clock), clock=clock, schedule=False)
    svc.engine._jitter = lambda: 0.5
    return svc
