"""A real KV stack for unit tests: KVStore → Barrier → SqliteStorage in a temp dir.

``clock`` and ``barrier`` come from ``tests/conftest.py``.
"""

from __future__ import annotations

import pytest

from vaultside.clock import FakeClock
from vaultside.crypto.barrier import Barrier
from vaultside.kv.store import KVStore
from vaultside.wiring.keyspace import view


@pytest.fixture
def kv(barrier: Barrier, clock: FakeClock) -> KVStore:
    return KVStore(view(barrier, "kv"), clock=clock, max_value_bytes=1024, default_max_versions=0)
