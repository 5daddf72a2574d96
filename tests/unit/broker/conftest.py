"""Broker unit-test fakes: a fake Vault lease engine (no network) over the in-memory storage."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from vaultside.broker.vault import UpstreamSecret
from vaultside.clock import FakeClock
from vaultside.errors import NotFoundError, UpstreamError, UpstreamUnavailableError
from vaultside.storage.base import Record
from vaultside.storage.memory import MemoryStorage


def leftovers(storage: MemoryStorage) -> dict[str, Record]:
    """Every record but who-leads records (``cluster/leaders/``, kept by design)."""
    return {k: v for k, v in storage.data.items() if not k.startswith("cluster/leaders/")}


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
def storage(clock: FakeClock) -> MemoryStorage:
    return MemoryStorage(clock=clock, interleave=False)  # each fake-clock step finishes a pass
