"""A real KV stack for unit tests: KVStore → Barrier → SqliteStorage in a temp dir."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from vaultside.clock import FakeClock
from vaultside.crypto.barrier import Barrier
from vaultside.crypto.seal import FileSeal, init_key_file
from vaultside.kv.store import KVStore
from vaultside.storage.sqlite import SqliteStorage
from vaultside.wiring.keyspace import view


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


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
    return KVStore(view(barrier, "kv"), clock=clock, max_value_bytes=1024, default_max_versions=0)
