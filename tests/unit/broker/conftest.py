"""Broker unit-test fakes: a dict storage backend and a fake Vault lease engine (no network)."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Sequence

import pytest

from vaultside.broker.vault import UpstreamSecret
from vaultside.clock import FakeClock
from vaultside.errors import ConflictError, NotFoundError, UpstreamError, UpstreamUnavailableError
from vaultside.storage.base import Delete, Op, Put, Record


class DictStorage:
    """A small, real in-memory StorageBackend (revision checks, expiring locks on ``clock``)."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.data: dict[str, Record] = {}
        self.locks: dict[str, tuple[str, float]] = {}  # name -> (holder, expires)
        self.clock = clock or FakeClock()
        self.down = False
        self._rev = itertools.count(1)

    def leftovers(self) -> dict[str, Record]:
        """Every record but who-leads records (``cluster/leaders/``, kept by design)."""
        return {k: v for k, v in self.data.items() if not k.startswith("cluster/leaders/")}

    def _check(self, key: str, expect_revision: int | None) -> None:
        if self.down:
            raise UpstreamUnavailableError("storage is unreachable")
        if expect_revision is None:
            return
        current = self.data.get(key)
        if (current.revision if current else 0) != expect_revision:
            raise ConflictError("revision mismatch")

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def get(self, key: str) -> Record | None:
        self._check(key, None)
        return self.data.get(key)

    async def put(self, key: str, value: bytes, *, expect_revision: int | None = None) -> int:
        self._check(key, expect_revision)
        rev = next(self._rev)
        self.data[key] = Record(value, rev)
        return rev

    async def delete(self, key: str, *, expect_revision: int | None = None) -> bool:
        self._check(key, expect_revision)
        return self.data.pop(key, None) is not None

    async def list(self, prefix: str, *, after: str = "", limit: int | None = None) -> list[str]:
        self._check(prefix, None)
        return sorted(k for k in self.data if k.startswith(prefix) and k > after)[:limit]

    async def write_batch(self, ops: Sequence[Op]) -> None:
        for op in ops:
            self._check(op.key, op.expect_revision)
        for op in ops:
            if isinstance(op, Put):
                await self.put(op.key, op.value)
            elif isinstance(op, Delete):
                await self.delete(op.key)

    async def try_lock(self, name: str, holder: str, ttl: float) -> bool:
        self._check(name, None)
        now = self.clock.now()
        current = self.locks.get(name)
        if current is None or current[0] == holder or current[1] <= now:
            self.locks[name] = (holder, now + ttl)
        return self.locks[name][0] == holder

    async def unlock(self, name: str, holder: str) -> None:
        self._check(name, None)
        if self.locks.get(name, ("", 0.0))[0] == holder:
            del self.locks[name]


class FakeLeaseEngine:
    """Simulates a Vault dynamic-secrets engine: TTL, max TTL, renewal, revocation, outages."""

    def __init__(self, clock: FakeClock, *, ttl: float = 60, max_ttl: float = 300) -> None:
        self.clock = clock
        self.ttl = ttl
        self.max_ttl = max_ttl
        self.leases: dict[str, tuple[float, float]] = {}  # id -> (expires_at, max_expires_at)
        self.issued = 0
        self.renewals: list[tuple[str, float]] = []
        self.revoked: list[str] = []
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise UpstreamUnavailableError("broker 'fake' is unreachable")

    async def issue(self, key: str) -> UpstreamSecret:
        await asyncio.sleep(0)
        self._check()
        self.issued += 1
        now = self.clock.now()
        lease_id = f"{key}/{self.issued}"
        self.leases[lease_id] = (now + self.ttl, now + self.max_ttl)
        data = {"username": f"u{self.issued}", "password": secrets.token_hex(8)}
        return UpstreamSecret(data, lease_id, lease_id, self.ttl, True)

    async def renew(self, lease_id: str, increment: float) -> tuple[float, bool]:
        self._check()
        now = self.clock.now()
        if lease_id not in self.leases or self.leases[lease_id][0] <= now:
            raise UpstreamError("lease not found or lease is not renewable")
        _, max_at = self.leases[lease_id]
        granted = min(increment, max_at - now)
        self.leases[lease_id] = (now + granted, max_at)
        self.renewals.append((lease_id, now))
        return granted, True

    async def revoke(self, lease_id: str) -> None:
        self._check()
        if self.leases.pop(lease_id, None) is None:
            raise NotFoundError("no such lease")
        self.revoked.append(lease_id)

    async def lookup(self, lease_id: str) -> float | None:
        self._check()
        exp = self.leases.get(lease_id)
        if exp is None or exp[0] <= self.clock.now():
            return None
        return exp[0] - self.clock.now()

    def valid(self, lease_id: str) -> bool:
        exp = self.leases.get(lease_id)
        return exp is not None and exp[0] > self.clock.now()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def storage(clock: FakeClock) -> DictStorage:
    return DictStorage(clock)
