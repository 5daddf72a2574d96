"""The shared lease store: lease records and per-server interest records in storage.

Every vaultside server on one storage sees the same records, so leases are coordinated
through them (see ``LeaseManager``). Keys, in the brokers' storage view (wiring: ``broker/``):

- ``<b>/leases/<digest>``: the current lease of one upstream path, credentials
  included, written with revision checks so two servers never both install a new lease.
- ``<b>/interest/<digest>/<holder>``: one server's interest in that lease: it has
  subscribers (valid until ``expires_at``, refreshed while they last) and/or it served the
  lease ``read`` again since it was issued.
- ``<b>/lease-renewal``: the storage lease naming the one server that renews,
  replaces and drops leases.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from vaultside.clock import Clock
from vaultside.storage.base import StorageBackend


@dataclass(slots=True)
class Lease:
    """One held lease. ``repr`` never shows ``data``."""

    key: str
    lease_id: str
    data: dict[str, str] = field(repr=False)
    duration: float
    renewable: bool
    issued_at: float
    expires_at: float
    capped: bool = False
    generation: int = 1
    # The upstream's max TTL for this path, learned when an earlier lease hit it (else None).
    max_ttl: float | None = None


@dataclass(frozen=True, slots=True)
class Interest:
    """Whether some other server wants a lease: live subscribers, or lease ids it read again."""

    subscribed: bool
    read: frozenset[str]


class LeaseStore:
    """Reads and writes one broker's lease and interest records."""

    def __init__(self, broker: str, storage: StorageBackend, clock: Clock, holder: str) -> None:
        self._broker = broker
        self._storage = storage
        self._clock = clock
        self.holder = holder
        self.lock_name = f"{broker}/lease-renewal"

    @staticmethod
    def _digest(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    def lease_key(self, key: str) -> str:
        """The storage key of ``key``'s lease record."""
        return f"{self._broker}/leases/{self._digest(key)}"

    def _interest_prefix(self, key: str) -> str:
        return f"{self._broker}/interest/{self._digest(key)}/"

    def _own_interest(self, key: str) -> str:
        holder = hashlib.sha256(self.holder.encode()).hexdigest()[:16]
        return self._interest_prefix(key) + holder

    async def try_lock(self, ttl: float) -> bool:
        """Take or keep the renewal lease for ``ttl`` seconds; True if this server holds it."""
        return await self._storage.try_lock(self.lock_name, self.holder, ttl)

    async def unlock(self) -> None:
        """Release the renewal lease if this server holds it."""
        await self._storage.unlock(self.lock_name, self.holder)

    async def read(self, key: str) -> tuple[Lease | None, int]:
        """The stored lease of ``key`` and its revision (0 when there is none)."""
        record = await self._storage.get(self.lease_key(key))
        if record is None:
            return None, 0
        return Lease(**json.loads(record.value)), record.revision

    async def read_all(self) -> dict[str, tuple[Lease, int]]:
        """Every stored lease by upstream key, with its revision."""
        found: dict[str, tuple[Lease, int]] = {}
        for skey in await self._storage.list(f"{self._broker}/leases/"):
            record = await self._storage.get(skey)
            if record is not None:
                lease = Lease(**json.loads(record.value))
                found[lease.key] = (lease, record.revision)
        return found

    async def write(self, lease: Lease, expect_revision: int | None) -> int:
        """Store ``lease``; ``ConflictError`` if the record changed since ``expect_revision``."""
        # SECURITY: the record holds credentials; the storage given here must be the barrier
        # (which encrypts), never a raw backend.
        value = json.dumps(asdict(lease)).encode()
        return await self._storage.put(
            self.lease_key(lease.key), value, expect_revision=expect_revision
        )

    async def delete(self, key: str, expect_revision: int | None = None) -> bool:
        """Remove ``key``'s lease record and every interest record but live subscriptions."""
        gone = await self._storage.delete(self.lease_key(key), expect_revision=expect_revision)
        now = self._clock.now()
        for ikey in await self._storage.list(self._interest_prefix(key)):
            record = await self._storage.get(ikey)
            if record is None:
                continue
            body = json.loads(record.value)
            if not (body["subscribed"] and body["expires_at"] > now):
                await self._storage.delete(ikey)
        return gone

    async def set_interest(
        self, key: str, *, subscribed: bool, read: str | None, ttl: float
    ) -> None:
        """Record this server's interest in ``key`` (subscriptions valid for ``ttl`` seconds)."""
        body = {"subscribed": subscribed, "read": read, "expires_at": self._clock.now() + ttl}
        await self._storage.put(self._own_interest(key), json.dumps(body).encode())

    async def drop_interest(self, key: str) -> None:
        """Remove this server's interest record for ``key``."""
        await self._storage.delete(self._own_interest(key))

    async def interest_elsewhere(self, key: str) -> Interest:
        """What the other servers' interest records for ``key`` say."""
        own = self._own_interest(key)
        now = self._clock.now()
        subscribed, read = False, set()
        for ikey in await self._storage.list(self._interest_prefix(key)):
            record = None if ikey == own else await self._storage.get(ikey)
            if record is None:
                continue
            body = json.loads(record.value)
            subscribed = subscribed or (body["subscribed"] and body["expires_at"] > now)
            if body["read"]:
                read.add(body["read"])
        return Interest(subscribed, frozenset(read))
