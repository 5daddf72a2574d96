"""Dynamic-secret leases: one shared lease per upstream path, renewed and replaced on time.

Each lease is renewed at ``renew_fraction`` (about two thirds) of its remaining TTL. When a
renewal grants less than asked, the lease has hit its max TTL and cannot be extended: new
credentials are then issued ahead of expiry (at ``renew_fraction`` of what is left) and handed
to every subscriber's callback; the old lease expires on its own upstream. A lease whose
last subscriber unsubscribes is revoked. A lease nobody subscribed to (plain API reads) is kept
renewed until its max TTL; then it is replaced ahead of expiry too if it was read again since
it was issued (a consumer polling ``/v1/resolve``, like the volume plugin's re-delivery loop,
gets the new credentials on its next read while the old ones still work), and otherwise
dropped at expiry, not replaced.

Persistence: every lease, credentials included, is written through the injected
``StorageBackend`` and picked up again by ``load`` after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Protocol

from prometheus_client import Counter

from vaultside.broker.vault import UpstreamSecret
from vaultside.clock import Clock
from vaultside.errors import NotFoundError, UpstreamError, UpstreamUnavailableError, VaultsideError
from vaultside.storage.base import StorageBackend

log = logging.getLogger(__name__)

LEASE_EVENTS = Counter(
    "vaultside_broker_lease_events_total",
    "Lease lifecycle events (issued, renewed, replaced, revoked, lost, expired)",
    ["broker", "event"],
)


class LeaseUpstream(Protocol):
    """What the lease manager needs from a broker (already authenticated)."""

    async def issue(self, key: str) -> UpstreamSecret:
        """Read ``<mount>/<path>`` again, which issues fresh credentials and a new lease."""
        ...

    async def renew(self, lease_id: str, increment: float) -> tuple[float, bool]:
        """Renew; returns (granted seconds, renewable)."""
        ...

    async def revoke(self, lease_id: str) -> None:
        """Revoke the lease upstream."""
        ...


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


Subscriber = Callable[[Lease], Awaitable[None]]


@dataclass(slots=True)
class Subscription:
    """A consumer's interest in a lease; ``LeaseManager.unsubscribe`` ends it."""

    key: str
    callback: Subscriber
    id: int


class LeaseManager:
    """Holds, renews, replaces, persists and revokes the leases of one broker."""

    def __init__(
        self,
        broker: str,
        upstream: LeaseUpstream,
        storage: StorageBackend,
        clock: Clock,
        *,
        renew_fraction: float = 2 / 3,
        retry_interval: float = 2.0,
    ) -> None:
        self._broker = broker
        self._upstream = upstream
        self._storage = storage
        self._clock = clock
        self._fraction = renew_fraction
        self._retry = retry_interval
        self._leases: dict[str, Lease] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._subs: dict[str, dict[int, Subscription]] = {}
        self._inflight: dict[str, asyncio.Task[Lease]] = {}
        # Keys whose current lease was read again after it was issued: still in use.
        self._read_again: set[str] = set()
        self._next_sub = 0
        self._closed = False

    def _storage_key(self, key: str) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        return f"broker/{self._broker}/leases/{digest}"

    def current(self, key: str) -> Lease | None:
        """The held lease for ``key`` if it has not expired."""
        lease = self._leases.get(key)
        if lease is None or lease.expires_at <= self._clock.now():
            return None
        return lease

    def leases(self) -> list[Lease]:
        """Every held lease."""
        return list(self._leases.values())

    async def acquire(self, key: str) -> Lease:
        """The current lease for ``key``, issuing one (single flight) if none is held."""
        lease = self.current(key)
        if lease is not None:
            self._read_again.add(key)
            return lease
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._issue_once(key))
            self._inflight[key] = task
        return await asyncio.shield(task)

    async def _issue_once(self, key: str) -> Lease:
        try:
            return await self._issue(key)
        finally:
            self._inflight.pop(key, None)

    def subscribe(self, key: str, callback: Subscriber) -> Subscription:
        """Call ``callback`` with the new lease whenever ``key``'s credentials are replaced."""
        self._next_sub += 1
        sub = Subscription(key, callback, self._next_sub)
        self._subs.setdefault(key, {})[sub.id] = sub
        lease = self._leases.get(key)
        if lease is not None and (lease.capped or not lease.renewable):
            # Its task may be waiting to let it lapse unreplaced: reschedule a replacement.
            self._start(key)
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        """End a subscription; the last one leaving revokes the lease."""
        subs = self._subs.get(sub.key, {})
        subs.pop(sub.id, None)
        if not subs:
            self._subs.pop(sub.key, None)
            await self.revoke(sub.key)

    async def revoke(self, key: str) -> None:
        """Revoke ``key``'s lease upstream and forget it."""
        lease = self._leases.pop(key, None)
        self._read_again.discard(key)
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()
        if lease is None:
            return
        try:
            await self._upstream.revoke(lease.lease_id)
            LEASE_EVENTS.labels(self._broker, "revoked").inc()
        except NotFoundError:
            pass
        except UpstreamUnavailableError as exc:
            # Not renewed any more, so it ends at its TTL upstream anyway.
            log.warning(
                "broker_lease_revoke_failed", extra={"broker": self._broker, "error": exc.message}
            )
        finally:
            await self._storage.delete(self._storage_key(key))

    async def load(self) -> int:
        """Pick up persisted leases after a restart; returns how many are held again."""
        now = self._clock.now()
        count = 0
        for skey in await self._storage.list(f"broker/{self._broker}/leases/"):
            record = await self._storage.get(skey)
            if record is None:
                continue
            lease = Lease(**json.loads(record.value))
            if lease.expires_at <= now:
                await self._storage.delete(skey)
                LEASE_EVENTS.labels(self._broker, "expired").inc()
                continue
            self._leases[lease.key] = lease
            self._start(lease.key)
            count += 1
        return count

    async def close(self) -> None:
        """Stop renewal tasks (leases stay valid upstream and persisted for the next start)."""
        self._closed = True
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _persist(self, lease: Lease) -> None:
        # SECURITY: the record holds credentials; the storage given here must be the barrier
        # (which encrypts), never a raw backend.
        await self._storage.put(self._storage_key(lease.key), json.dumps(asdict(lease)).encode())

    async def _issue(self, key: str, generation: int = 1) -> Lease:
        secret = await self._upstream.issue(key)
        if not secret.lease_id or secret.lease_duration <= 0:
            raise UpstreamError(f"broker {self._broker!r}: {key} did not issue a lease")
        now = self._clock.now()
        lease = Lease(
            key=key,
            lease_id=secret.lease_id or "",
            data=dict(secret.data),
            duration=secret.lease_duration,
            renewable=secret.renewable,
            issued_at=now,
            expires_at=now + secret.lease_duration,
            generation=generation,
        )
        self._leases[key] = lease
        self._read_again.discard(key)
        await self._persist(lease)
        LEASE_EVENTS.labels(self._broker, "issued").inc()
        self._start(key)
        return lease

    def _start(self, key: str) -> None:
        old = self._tasks.pop(key, None)
        if old is not None and old is not asyncio.current_task():
            old.cancel()
        if not self._closed:
            self._tasks[key] = asyncio.get_running_loop().create_task(self._maintain(key))

    async def _maintain(self, key: str) -> None:
        retrying = False
        while True:
            lease = self._leases.get(key)
            if lease is None:
                return
            if not retrying:
                left = lease.expires_at - self._clock.now()
                await self._clock.sleep(max(0.0, left * self._fraction))
            retrying = False
            if self._leases.get(key) is not lease:
                return
            try:
                if lease.capped or not lease.renewable:
                    await self._replace_or_drop(lease)
                    return
                await self._renew(lease)
            except asyncio.CancelledError:
                raise
            except UpstreamUnavailableError as exc:
                retrying = await self._retry_later(lease, exc)
                if not retrying:
                    return
            except VaultsideError as exc:
                # The lease is gone upstream (revoked, unknown): replace it or drop it.
                log.warning(
                    "broker_lease_lost", extra={"broker": self._broker, "error": exc.message}
                )
                LEASE_EVENTS.labels(self._broker, "lost").inc()
                lease.capped = True
                lease.expires_at = self._clock.now()
                await self._replace_or_drop(lease)
                return

    async def _renew(self, lease: Lease) -> None:
        granted, renewable = await self._upstream.renew(lease.lease_id, lease.duration)
        now = self._clock.now()
        lease.expires_at = now + granted
        lease.renewable = renewable
        if granted < lease.duration - 1:
            lease.capped = True  # the upstream capped us at the max TTL
        await self._persist(lease)
        LEASE_EVENTS.labels(self._broker, "renewed").inc()

    async def _retry_later(self, lease: Lease, exc: UpstreamUnavailableError) -> bool:
        """Wait before the next renewal attempt; False once the lease expired (task ends)."""
        left = lease.expires_at - self._clock.now()
        log.warning(
            "broker_lease_renewal_failed", extra={"broker": self._broker, "error": exc.message}
        )
        if left <= 0:
            # Expired while the upstream was away: subscribers get new credentials as soon
            # as it is back; without subscribers the next acquire issues a new lease.
            LEASE_EVENTS.labels(self._broker, "expired").inc()
            lease.capped = True
            await self._replace_or_drop(lease)
            return False
        await self._clock.sleep(min(self._retry, left / 2))
        return True

    async def _replace_or_drop(self, lease: Lease) -> None:
        key = lease.key
        if not self._subs.get(key) and key not in self._read_again:
            # Nobody to hand new credentials to: keep the old until it expires, then forget.
            left = lease.expires_at - self._clock.now()
            if left > 0:
                await self._clock.sleep(left)
            if self._leases.get(key) is lease:
                self._leases.pop(key, None)
                await self._storage.delete(self._storage_key(key))
                LEASE_EVENTS.labels(self._broker, "expired").inc()
            return
        while True:
            try:
                new = await self._issue(key, lease.generation + 1)
                break
            except UpstreamUnavailableError as exc:
                left = lease.expires_at - self._clock.now()
                log.warning(
                    "broker_lease_replace_failed",
                    extra={"broker": self._broker, "error": exc.message},
                )
                await self._clock.sleep(min(self._retry, left / 2) if left > 1 else self._retry)
        LEASE_EVENTS.labels(self._broker, "replaced").inc()
        for sub in list(self._subs.get(key, {}).values()):
            try:
                await sub.callback(new)
            except Exception:
                log.exception("broker_lease_subscriber_failed", extra={"broker": self._broker})
