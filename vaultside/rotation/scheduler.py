"""The rotation scheduler: persisted next-run times, catch-up once, one leader per store.

Only the process holding the storage lease ``rotation/scheduler`` schedules; the others
retry taking it every ``lease_ttl / 3``. The leader keeps a heap of (time, path) — not the
policies — and reloads it whenever the policy generation record changes. A ``next_run``
already in the past at load (missed while vaultside was down) runs once, at the first tick;
the next one is planned from then. After a successful rotation with a grace period, the
previous KV version is soft-deleted when the grace ends.

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
from vaultside.errors import ConflictError, NotFoundError, SealedError, UpstreamUnavailableError
from vaultside.rotation.engine import RotationEngine, describe, plan_next

log = logging.getLogger(__name__)

LEADER_LEASE = "rotation/scheduler"
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
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.lease_ttl = lease_ttl
        self.leader = False
        self._sem = asyncio.Semaphore(concurrency)
        self._generation: int | None = None
        self._heap: list[tuple[float, str, str]] = []
        self._planned: dict[tuple[str, str], float] = {}

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
        for path in await store.policy_paths():
            state = await store.get_state(path)
            if state.next_run is None:
                try:
                    policy = await store.get_policy(path)
                except NotFoundError:
                    continue
                if not policy.enabled:
                    continue
                state.next_run = plan_next(policy, now, self.engine.jitter_fraction())
                await store.put_state(path, state)
            self._push(state.next_run, path, "rotate")
            if state.grace_until is not None:
                self._push(state.grace_until, path, "grace")
        self.engine.metrics.policies.set(len(self))

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
        await leaders.report(storage, self.clock, LEADER_JOB, self.engine.holder, True)
        generation = await self.engine.store.generation()
        if generation != self._generation:
            await self.reload()
            self._generation = generation
        now = self.clock.now()
        due: list[tuple[str, str]] = []
        while self._heap and self._heap[0][0] <= now:
            when, path, kind = heapq.heappop(self._heap)
            if self._planned.get((path, kind)) == when:
                del self._planned[(path, kind)]
                due.append((path, kind))
        if due:
            # Runs may outlast the (short) lease: keep it meanwhile, or another server would
            # take the scheduler over from a leader that is merely busy.
            keeper = asyncio.create_task(self._keep_lease())
            try:
                await asyncio.gather(*(self._run_due(path, kind) for path, kind in due))
            finally:
                keeper.cancel()
                await asyncio.gather(keeper, return_exceptions=True)
        delay = self.lease_ttl / 3
        if self._heap:
            delay = min(delay, self._heap[0][0] - self.clock.now())
        return max(delay, 0.0)

    async def _keep_lease(self) -> None:
        while True:
            await self.clock.sleep(self.lease_ttl / 3)
            held = await self.engine.storage.try_lock(
                LEADER_LEASE, self.engine.holder, self.lease_ttl
            )
            if not held:
                log.warning("lost the rotation scheduler lease while running rotations")

    async def _run_due(self, path: str, kind: str) -> None:
        async with self._sem:
            try:
                if kind == "grace":
                    await self._expire_grace(path)
                else:
                    await self._rotate(path)
            except ConflictError:
                self._push(self.clock.now() + 60.0, path, kind)  # busy elsewhere: look again
            except Exception as exc:
                log.error(
                    "scheduled rotation errored", extra={"path": path, "error": describe(exc)}
                )
                self._push(self.clock.now() + _ERROR_DELAY * 12, path, kind)

    async def _rotate(self, path: str) -> None:
        store = self.engine.store
        try:
            policy = await store.get_policy(path)
        except NotFoundError:
            return  # deleted since the heap was built
        state = await store.get_state(path)
        now = self.clock.now()
        if state.next_run is not None and state.next_run > now:
            self._push(state.next_run, path, "rotate")  # re-planned (e.g. rotated by hand)
            return
        if not policy.enabled:
            return
        await self.engine.rotate(path, policy, trigger="schedule")
        state = await store.get_state(path)
        if state.next_run is not None:
            self._push(state.next_run, path, "rotate")
        if state.grace_until is not None:
            self._push(state.grace_until, path, "grace")

    async def _expire_grace(self, path: str) -> None:
        store = self.engine.store
        state = await store.get_state(path)
        if state.grace_until is None:
            return
        if state.grace_until > self.clock.now():
            self._push(state.grace_until, path, "grace")
            return
        previous = state.previous_version
        if previous is not None and previous != state.version:
            with contextlib.suppress(NotFoundError):
                await self.engine.kv.delete_versions(path, [previous])
        state.grace_until = None
        await store.put_state(path, state)
        log.info("grace ended; previous version deleted", extra={"path": path, "version": previous})

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
                await self.clock.sleep(delay)
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
