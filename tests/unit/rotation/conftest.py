"""A real rotation stack for unit tests: KVStore → Barrier → SqliteStorage, on a FakeClock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from vaultside.auth.policy import Authorizer, PolicyStore
from vaultside.auth.records import TokenInfo
from vaultside.auth.tokens import TokenStore
from vaultside.clock import FakeClock
from vaultside.crypto.barrier import Barrier
from vaultside.crypto.seal import FileSeal, init_key_file
from vaultside.kv.store import KVStore
from vaultside.rotation.authority import RotationAuthority
from vaultside.rotation.service import RotationService
from vaultside.storage.sqlite import SqliteStorage
from vaultside.wiring.keyspace import view
from vaultside.wiring.rotation import target_factory

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
    return KVStore(view(barrier, "kv"), clock=clock, default_max_versions=0)


@pytest.fixture
def tokens(barrier: Barrier, clock: FakeClock) -> TokenStore:
    return TokenStore(view(barrier, "tokens"), clock=clock)


@pytest.fixture
def policies(barrier: Barrier, clock: FakeClock) -> PolicyStore:
    return PolicyStore(view(barrier, "policies"), clock=clock, staleness=0.0)


@pytest.fixture
def authority(tokens: TokenStore, policies: PolicyStore) -> RotationAuthority:
    """The real authority: real tokens and policies over the test barrier."""
    return RotationAuthority(tokens, Authorizer(policies))


@pytest.fixture
async def root(tokens: TokenStore) -> TokenInfo:
    """A root token's info: holds every capability a rotation can need."""
    return (await tokens.create_root())[1]


@pytest.fixture
def service(
    kv: KVStore, barrier: Barrier, clock: FakeClock, authority: RotationAuthority
) -> RotationService:
    svc = RotationService(
        kv,
        view(barrier, "rotation"),
        target_factory(clock),
        authority=authority,
        clock=clock,
        schedule=False,
    )
    svc.engine._jitter = lambda: 0.5
    return svc
