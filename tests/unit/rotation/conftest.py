"""A real rotation stack for unit tests: KVStore → Barrier → SqliteStorage, on a FakeClock.

``barrier``, ``tokens`` and ``root`` come from ``tests/conftest.py``; ``clock`` is overridden
to start at ``START``.
"""

from __future__ import annotations

import pytest

from tests.stores import rotation_service
from vaultside.auth.policy import Authorizer, PolicyStore
from vaultside.auth.tokens import TokenStore
from vaultside.clock import FakeClock
from vaultside.crypto.barrier import Barrier
from vaultside.kv.store import KVStore
from vaultside.rotation.authority import RotationAuthority
from vaultside.rotation.service import RotationService
from vaultside.wiring.keyspace import view

# 2023-11-14 22:13:20 UTC
START = 1_700_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def kv(barrier: Barrier, clock: FakeClock) -> KVStore:
    return KVStore(view(barrier, "kv"), clock=clock, default_max_versions=0)


@pytest.fixture
def policies(barrier: Barrier, clock: FakeClock) -> PolicyStore:
    return PolicyStore(view(barrier, "policies"), clock=clock, staleness=0.0)


@pytest.fixture
def authority(tokens: TokenStore, policies: PolicyStore) -> RotationAuthority:
    """The real authority: real tokens and policies over the test barrier."""
    return RotationAuthority(tokens, Authorizer(policies))


@pytest.fixture
def service(
    kv: KVStore, barrier: Barrier, clock: FakeClock, authority: RotationAuthority
) -> RotationService:
    svc = rotation_service(kv, barrier, clock, authority)
    svc.engine._jitter = lambda: 0.5
    return svc
