"""Lease coordination between vaultside servers sharing one storage.

Several servers on one storage (``LeaseStore`` holds the shared records):

- Only the holder of the storage lease ``<b>/lease-renewal`` of the brokers' view (wiring:
  ``broker/``; taken and renewed every ``lock_ttl / 3``, re-confirmed before each renewal,
  replacement or drop) maintains leases.
  A leader that dies or loses storage for ``lock_ttl`` stops; another server takes over.
- Every server re-reads the lease records every ``lock_ttl / 3`` (and when its copy has
  expired): it serves the leader's renewed or replaced credentials and hands replacements to
  its own subscribers. A server finding no valid lease issues one with a revision check, so
  of two servers issuing at once one installs its lease and the other revokes its own.
- Subscribers and reads are recorded per server (interest records): the leader replaces a
  capped lease if any server wants it, and the last unsubscribe revokes only when no other
  server has live subscribers. A dead server's subscriptions lapse after ``lock_ttl``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Counter

from vaultside.broker.lease_store import Lease, LeaseStore
from vaultside.broker.vault import UpstreamSecret
from vaultside.clock import Clock
from vaultside.cluster import leaders
from vaultside.errors import ConflictError, VaultsideError
from vaultside.lifecycle import LoopTask
from vaultside.storage.base import StorageBackend

log = logging.getLogger("vaultside.broker.leases")

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

    async def lookup(self, lease_id: str) -> float | None:
        """Seconds the lease has left upstream; None once the upstream no longer knows it."""
        ...


Subscriber = Callable[[Lease], Awaitable[None]]


@dataclass(slots=True)
class Subscription:
    """A consumer's interest in a lease; ``LeaseManager.unsubscribe`` ends it."""

    key: str
    callback: Subscriber
    id: int


class LeaseSync(ABC):
    """A lease manager's shared state and its coordination with the other servers."""

    def __init__(
        self,
        broker: str,
        upstream: LeaseUpstream,
        storage: StorageBackend,
        clock: Clock,
        *,
        renew_fraction: float = 2 / 3,
        retry_interval: float = 2.0,
        lock_ttl: float = 15.0,
        holder: str | None = None,
        replace_fraction: float = 1 / 3,
        min_remaining: float = 10.0,
        verify_interval: float = 1.0,
        leaders: StorageBackend | None = None,
    ) -> None:
        self._broker = broker
        self._leaders = leaders  # where "who leads since when" goes (None: metric only)
        self._upstream = upstream
        self._clock = clock
        self._fraction = renew_fraction
        self._replace_fraction = replace_fraction
        self._min_remaining = min_remaining
        self._verify_interval = verify_interval
        self._retry = retry_interval
        self._lock_ttl = lock_ttl
        holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._store = LeaseStore(broker, storage, clock, holder)
        self._storage = storage
        #: The leader job name (``GET /v1/sys/leaders``, ``vaultside_leader{job}``).
        self.job = f"broker-lease-renewal/{broker}"
        self.lock_name = self._store.lock_name
        self.leader = False
        self._lock_until = 0.0
        self._leases: dict[str, Lease] = {}
        self._revs: dict[str, int] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._subs: dict[str, dict[int, Subscription]] = {}
        self._inflight: dict[str, asyncio.Task[Lease]] = {}
        # Keys whose current lease was read again after it was issued: still in use.
        self._read_again: set[str] = set()
        self._read_marked: dict[str, str] = {}
        self._next_sub = 0
        # Max TTLs learned per path; upstream look-ups of leases (when, and in flight).
        self._learned_max: dict[str, float] = {}
        self._verified_at: dict[str, float] = {}
        self._checks: dict[str, asyncio.Task[bool]] = {}
        # Keys whose lease a look-up found gone: the next lease goes to their subscribers.
        self._dropped: set[str] = set()
        self._sync_loop = LoopTask(self._run, name="broker-lease-sync")
        self._closed = False

    def current(self, key: str) -> Lease | None:
        """The held lease for ``key`` if it has not expired."""
        lease = self._leases.get(key)
        if lease is None or lease.expires_at <= self._clock.now():
            return None
        return lease

    def leases(self) -> list[Lease]:
        """Every held lease."""
        return list(self._leases.values())

    @staticmethod
    def end_of(lease: Lease) -> float | None:
        """When the credentials stop working for sure: the expiry of a capped or non-renewable
        lease, else issue time plus a max TTL learned from an earlier lease; None if unknown."""
        if lease.capped or not lease.renewable:
            return lease.expires_at
        if lease.max_ttl:
            return lease.issued_at + lease.max_ttl
        return None

    def remaining_life(self, lease: Lease) -> float:
        """Seconds ``lease`` is known to stay valid (a lower bound while still renewed)."""
        end = self.end_of(lease)
        return max(0.0, (lease.expires_at if end is None else end) - self._clock.now())

    def _min_life(self, lease: Lease, end: float) -> float:
        # A role whose whole max TTL is under twice the minimum: half its life is the best.
        return min(self._min_remaining, (end - lease.issued_at) / 2)

    def _unknown_end_min_life(self, lease: Lease) -> float:
        # Until a capped renewal reveals the max TTL, the certain life is the current TTL;
        # renewals keep at least this much of it (three quarters of a TTL at the most).
        return min(self._min_remaining, 0.75 * lease.duration)

    def renew_time(self, lease: Lease) -> float:
        """When to renew ``lease``: at ``renew_fraction`` of its TTL; while its max TTL is
        unknown, early enough that its current TTL keeps what ``servable`` asks for."""
        due = lease.expires_at - (1 - self._fraction) * lease.duration
        if self.end_of(lease) is None:
            keep = self._unknown_end_min_life(lease) + 0.1 * lease.duration
            due = min(due, lease.expires_at - keep)
        return due

    def replace_at(self, lease: Lease) -> float | None:
        """When to replace ``lease``: ``replace_fraction`` of its max TTL (at least the minimum
        remaining life) ahead of its known end; None while its end is unknown."""
        end = self.end_of(lease)
        if end is None:
            return None
        life = end - lease.issued_at
        return end - max(self._replace_fraction * life, self._min_life(lease, end))

    def servable(self, lease: Lease) -> bool:
        """Valid, with at least the minimum remaining life (a plain reader can plan on it)."""
        now = self._clock.now()
        if lease.expires_at <= now:
            return False
        end = self.end_of(lease)
        if end is None:
            # Max TTL not learned yet: only the current TTL is certain (renewed to keep this).
            return lease.expires_at - now >= self._unknown_end_min_life(lease)
        return end - now >= self._min_life(lease, end)

    async def _mark_read(self, key: str, lease: Lease) -> None:
        self._read_again.add(key)
        if self._read_marked.get(key) != lease.lease_id:
            # Once per lease and server: the leader replaces a capped lease someone reads.
            self._read_marked[key] = lease.lease_id
            await self._put_interest(key)

    async def _put_interest(self, key: str) -> None:
        await self._store.set_interest(
            key,
            subscribed=bool(self._subs.get(key)),
            read=self._read_marked.get(key),
            ttl=self._lock_ttl,
        )

    # --- coordination ---------------------------------------------------------------------------

    async def _ensure_started(self) -> None:
        if self._sync_loop.running or self._closed:
            return
        await self.tick()
        if not self._closed:
            self._sync_loop.start()

    async def _run(self) -> None:
        while True:
            await self._clock.sleep(self._lock_ttl / 3)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except VaultsideError as exc:
                log.warning(
                    "broker_lease_sync_failed", extra={"broker": self._broker, "error": exc.message}
                )
                if self.leader and self._clock.now() >= self._lock_until:
                    self._step_down()  # cut off from storage for a whole lock TTL
            except Exception:
                log.exception("broker_lease_sync_errored", extra={"broker": self._broker})

    async def tick(self) -> None:
        """One coordination pass: take or keep the renewal lease, heartbeat, re-read leases."""
        await self._confirm_leader()
        for key, subs in list(self._subs.items()):
            if subs:
                await self._put_interest(key)
        await self._sync()

    async def _confirm_leader(self) -> bool:
        held = await self._store.try_lock(self._lock_ttl)
        if held:
            self._lock_until = self._clock.now() + self._lock_ttl
            if not self.leader:
                log.info("broker_lease_leader", extra={"broker": self._broker})
            self.leader = True
            await leaders.report(self._leaders, self._clock, self.job, self._store.holder, True)
        elif self.leader:
            self._step_down()
        else:
            leaders.mark(self.job, self._store.holder, False)
        return held

    def _step_down(self) -> None:
        log.warning("broker_lease_leader_lost", extra={"broker": self._broker})
        self.leader = False
        leaders.mark(self.job, self._store.holder, False)
        current = asyncio.current_task()
        for task in list(self._tasks.values()):
            if task is not current:
                task.cancel()
        self._tasks.clear()

    async def _sync(self) -> None:
        stored = await self._store.read_all()
        now = self._clock.now()
        for key, (lease, rev) in stored.items():
            if lease.expires_at <= now:
                if self.leader and self._leases.get(key) is None:
                    with contextlib.suppress(ConflictError):
                        await self._store.delete(key, rev)
                    LEASE_EVENTS.labels(self._broker, "expired").inc()
                continue
            local = self._leases.get(key)
            if local is None or local.lease_id != lease.lease_id:
                if local is None or lease.issued_at >= local.issued_at:
                    await self._adopt(lease, rev)
            elif rev != self._revs.get(key):
                local.expires_at, local.renewable = lease.expires_at, lease.renewable
                local.capped, local.max_ttl = lease.capped, lease.max_ttl
                self._revs[key] = rev
            task = self._tasks.get(key)
            if self.leader and key in self._leases and (task is None or task.done()):
                self._start(key)
        # Held here but gone from storage (revoked or dropped elsewhere), or subscribed here
        # with no lease at all (an earlier attempt failed): forget, and re-issue if wanted.
        wanted = {k for k, subs in self._subs.items() if subs}
        for key in sorted((set(self._leases) | wanted) - set(stored) - set(self._inflight)):
            if (await self._store.read(key))[0] is None:
                self._forget(key)
                if key in wanted:
                    self._dropped.discard(key)  # told here, not again by _obtain
                    await self._notify(await self._obtain(key))

    async def _adopt(self, lease: Lease, rev: int) -> None:
        """Serve ``lease`` (installed by another server); tell subscribers if it is new."""
        old = self._leases.get(lease.key)
        self._leases[lease.key] = lease
        self._revs[lease.key] = rev
        if lease.max_ttl:
            self._learned_max[lease.key] = lease.max_ttl
        if old is not None and old.lease_id != lease.lease_id:
            self._read_again.discard(lease.key)
            self._start(lease.key)
            await self._notify(lease)
        elif old is None:
            self._start(lease.key)

    def _forget(self, key: str) -> None:
        self._leases.pop(key, None)
        self._revs.pop(key, None)
        self._read_again.discard(key)
        task = self._tasks.pop(key, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _notify(self, lease: Lease) -> None:
        for sub in list(self._subs.get(lease.key, {}).values()):
            try:
                await sub.callback(lease)
            except Exception:
                log.exception("broker_lease_subscriber_failed", extra={"broker": self._broker})

    async def _still_leader(self) -> bool:
        """Re-confirm the renewal lease before acting, so no two servers act on one lease."""
        while self.leader:
            try:
                return await self._confirm_leader()
            except VaultsideError:
                await self._clock.sleep(self._retry)  # storage away: the run loop steps down
        return False

    @abstractmethod
    def _start(self, key: str) -> None:
        """(Re)start the leader's maintenance task for ``key``."""

    @abstractmethod
    async def _obtain(self, key: str) -> Lease:
        """The stored lease for ``key``, or a new one (single flight)."""
