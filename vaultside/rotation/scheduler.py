"""The rotation scheduler: persisted next-run times, catch-up once, one leader per store.

Only the process holding the lease ``scheduler`` of the rotation view schedules; the others
retry taking it every ``lease_ttl / 3``. The leader keeps a heap of (time, path) — not the
policies — and reloads it whenever the policy generation record changes. A ``next_run``
already in the past at load (missed while vaultside was down) runs once, at the first tick;
the next one is planned from then.

Grace: after a successful rotation with a grace period, the replaced KV version is
soft-deleted when its own grace ends. Each replaced version has its own persisted deadline
(the grace queue in ``RotationStore``), so ``grace`` >= ``every`` and manual rotations inside
a grace period delete every old version on time, across restarts and leader changes. The
leader lists the queue each tick (a rotation in this process wakes it at once; one on another
server is seen within ``lease_ttl / 3``).

All time comes from the injected ``Clock``; ``tick`` is one step of the loop, which tests
drive directly on a ``FakeClock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging

from vaultside.clock import Clock
from vaultside.cluster import leaders
from vaultside.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    SealedError,
    UpstreamUnavailableError,
)
from vaultside.lifecycle import LoopTask, first_of
from vaultside.rotation.engine import RotationEngine, describe, plan_next
from vaultside.storage.base import StorageBackend

log = logging.getLogger(__name__)

LEADER_LEASE = "scheduler"  # in the rotation service's storage view
LEADER_JOB = "rotation-scheduler"
_ERROR_DELAY = 5.0


class RotationScheduler:
    """Runs due rotations and grace expiries; safe to run in several processes."""

    def __init__(
        self,
        engine: RotationEngine,
        *,
        clock: Clock,
        lease_ttl: float = 30.0,
        concurrency: int = 4,
        leaders: StorageBackend | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.leaders = leaders  # where "who leads since when" goes (None: metric only)
        self.lease_ttl = lease_ttl
        self.leader = False
        self._sem = asyncio.Semaphore(concurrency)
        self._generation: int | None = None
        self._heap: list[tuple[float, str, str]] = []
        self._planned: dict[tuple[str, str], float] = {}
        self._grace: list[tuple[float, str, int]] = []  # (due, path, version)
        self._grace_known: set[tuple[str, int]] = set()
        self._wake = asyncio.Event()
        engine.hooks.append(self._rotated)

    async def _rotated(self, path: str, version: int) -> None:
        """Engine hook: a rotation here may have queued a grace deadline; tick again now."""
        self._wake.set()

    def _push(self, when: float, path: str, kind: str) -> None:
        self._planned[(path, kind)] = when
        heapq.heappush(self._heap, (when, path, kind))

    def planned(self, path: str) -> float | None:
        """When ``path`` is next due (leader only; None if unknown)."""
        return self._planned.get((path, "rotate"))

    def __len__(self) -> int:
        return sum(1 for k in self._planned if k[1] == "rotate")

    async def reload(self) -> None:
        """Rebuild the heap from persisted policies and state."""
        store = self.engine.store
        self._heap, self._planned = [], {}
        now = self.clock.now()
        queued = {path for path, _ in await store.grace_keys()}
        for path in await store.policy_paths():
            state = await store.get_state(path)
            previous = state.previous_version
            if state.grace_until is not None and previous and path not in queued:
                # Written before the grace queue existed: queue its one pending deletion.
                await store.add_grace(path, previous, state.grace_until)
            if state.next_run is None:
                try:
                    policy = await store.get_policy(path)
                except NotFoundError:
                    continue
                except InvalidRequestError as exc:
                    if state.last_step != "authorize":  # refused once, not at every reload
                        await self.engine.refuse(path, exc.message, kind="unknown", trigger="load")
                    continue
                if not policy.enabled:
                    continue
                state.next_run = plan_next(policy, now, self.engine.jitter_fraction())
                await store.put_state(path, state)
            self._push(state.next_run, path, "rotate")
        self._grace, self._grace_known = [], set()
        await self._sync_grace()
        self.engine.metrics.policies.set(len(self))

    async def _sync_grace(self) -> None:
        """Add queued grace deadlines this scheduler has not seen yet (one list call)."""
        store = self.engine.store
        for path, version in await store.grace_keys():
            if (path, version) in self._grace_known:
                continue
            entry = await store.get_grace(path, version)
            if entry is not None:
                self._grace_known.add((path, version))
                heapq.heappush(self._grace, (entry.due, path, version))

    async def tick(self) -> float:
        """One pass: hold the lease, reload if needed, run what is due; returns the next delay."""
        storage = self.engine.storage
        if not await storage.try_lock(LEADER_LEASE, self.engine.holder, self.lease_ttl):
            if self.leader:
                log.warning("lost the rotation scheduler lease")
            self.leader = False
            self.engine.metrics.leader.set(0)
            leaders.mark(LEADER_JOB, self.engine.holder, False)
            return self.lease_ttl / 3
        if not self.leader:
            recovered = await self.engine.recover()
            self.leader = True
            self._generation = None
            self.engine.metrics.leader.set(1)
            log.info("rotation scheduler is leader", extra={"recovered": recovered})
        elif self.engine.unrecovered:
            # A crashed process's path lock outlived its scheduler lease: try again now.
            recovered = await self.engine.recover()
            if recovered:
                log.info("rotation recovery caught up", extra={"recovered": recovered})
        await leaders.report(self.leaders, self.clock, LEADER_JOB, self.engine.holder, True)
        self._wake.clear()
        generation = await self.engine.store.generation()
        if generation != self._generation:
            await self.reload()
            self._generation = generation
        else:
            await self._sync_grace()
        now = self.clock.now()
        due: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            when, path, kind = heapq.heappop(self._heap)
            if self._planned.get((path, kind)) == when:
                del self._planned[(path, kind)]
                due.append(path)
        expired: list[tuple[str, int]] = []
        while self._grace and self._grace[0][0] <= now:
            _, path, version = heapq.heappop(self._grace)
            expired.append((path, version))
        if due or expired:
            # Runs may outlast the (short) lease: keep it meanwhile, or another server would
            # take the scheduler over from a leader that is merely busy.
            async with LoopTask(self._keep_lease, name="rotation-scheduler-keeper"):
                await asyncio.gather(
                    *(self._run_due(path) for path in due),
                    *(self._run_grace(path, version) for path, version in expired),
                )
        delay = self.lease_ttl / 3
        for heap in (self._heap, self._grace):
            if heap:
                delay = min(delay, heap[0][0] - self.clock.now())
        return max(delay, 0.0)

    async def _keep_lease(self) -> None:
        while True:
            await self.clock.sleep(self.lease_ttl / 3)
            held = await self.engine.storage.try_lock(
                LEADER_LEASE, self.engine.holder, self.lease_ttl
            )
            if not held:
                log.warning("lost the rotation scheduler lease while running rotations")

    async def _run_due(self, path: str) -> None:
        async with self._sem:
            try:
                await self._rotate(path)
            except ConflictError:
                self._push(self.clock.now() + 60.0, path, "rotate")  # busy elsewhere: look again
            except Exception as exc:
                log.error(
                    "scheduled rotation errored", extra={"path": path, "error": describe(exc)}
                )
                self._push(self.clock.now() + _ERROR_DELAY * 12, path, "rotate")

    async def _run_grace(self, path: str, version: int) -> None:
        async with self._sem:
            try:
                await self._expire_grace(path, version)
            except Exception as exc:
                log.error(
                    "grace expiry errored",
                    extra={"path": path, "version": version, "error": describe(exc)},
                )
                heapq.heappush(self._grace, (self.clock.now() + _ERROR_DELAY * 12, path, version))

    async def _rotate(self, path: str) -> None:
        store = self.engine.store
        try:
            record = await store.get_record(path)
        except NotFoundError:
            return  # deleted since the heap was built
        except InvalidRequestError as exc:
            # SECURITY: e.g. an API-set argv from an older version: refused, recorded, audited.
            await self.engine.refuse(path, exc.message, kind="unknown", trigger="schedule")
            return
        policy = record.policy
        state = await store.get_state(path)
        now = self.clock.now()
        if state.next_run is not None and state.next_run > now:
            self._push(state.next_run, path, "rotate")  # re-planned (e.g. rotated by hand)
            return
        if not policy.enabled:
            return
        # The run carries the authority recorded with the policy; the engine re-checks it.
        await self.engine.rotate(path, policy, grant=record.grant, trigger="schedule")
        state = await store.get_state(path)
        if state.next_run is not None:
            self._push(state.next_run, path, "rotate")
        await self._sync_grace()

    async def _expire_grace(self, path: str, version: int) -> None:
        """Soft-delete ``version`` of ``path`` if its grace is over (never the current one)."""
        store = self.engine.store
        entry = await store.get_grace(path, version)
        if entry is None:  # handled by another leader meanwhile
            self._grace_known.discard((path, version))
            return
        if entry.due > self.clock.now():
            heapq.heappush(self._grace, (entry.due, path, version))
            return
        try:
            current: int | None = (await self.engine.kv.read_metadata(path)).current_version
        except NotFoundError:
            current = None  # the secret is gone altogether: nothing left to delete
        if current is not None and version != current:
            with contextlib.suppress(NotFoundError):
                await self.engine.kv.delete_versions(path, [version])
        state = await store.get_state(path)
        later = [e.due for e in await store.grace_of(path) if e.version != version]
        state.grace_until = max(later, default=None)
        await store.put_state(path, state)
        await store.remove_grace(path, version)
        self._grace_known.discard((path, version))
        log.info("grace ended; previous version deleted", extra={"path": path, "version": version})

    async def _sleep(self, delay: float) -> None:
        """Sleep ``delay``, or less if a rotation in this process queued a grace deadline."""
        await first_of(self.clock.sleep(delay), self._wake.wait())

    async def run(self) -> None:
        """Tick forever (cancel to stop); releases the lease on the way out."""
        try:
            while True:
                try:
                    delay = await self.tick()
                except (SealedError, UpstreamUnavailableError) as exc:
                    log.warning("rotation scheduler waiting", extra={"error": describe(exc)})
                    delay = _ERROR_DELAY
                except Exception as exc:
                    log.error("rotation scheduler tick failed", extra={"error": describe(exc)})
                    delay = _ERROR_DELAY
                await self._sleep(delay)
        finally:
            if self.leader:
                self.leader = False
                leaders.mark(LEADER_JOB, self.engine.holder, False)
                try:
                    await asyncio.shield(
                        self.engine.storage.unlock(LEADER_LEASE, self.engine.holder)
                    )
                except Exception:
                    log.warning("could not release the scheduler lease")
