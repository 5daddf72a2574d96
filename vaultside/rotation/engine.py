"""The rotation itself: create_pending → set → test → finish, journaled, with rollback.

Every step is journaled *before* it acts. A failure at any step before promotion rolls the
target back and discards the pending value, so the current secret keeps working. Promotion
is one check-and-set KV write (``cas`` = the version the rotation started from): after it
the new value is current and the previous version stays readable by number. ``recover``
runs at start: an entry journaled at ``finish`` is completed, anything earlier rolled back.

Authority: before anything else a run checks that the token recorded when the policy was set
still holds everything the rotation touches (``authority.RotationAuthority.check_run``); if
not, the run fails closed at step ``authorize`` (history, audit with status 403, retry plan),
and nothing is generated, handed to the target or written.

Concurrency: one rotation per secret at a time — an in-process lock plus a storage lease
(``lock/<path>`` of the rotation view), so two processes sharing the store never rotate one
secret at once.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable

from vaultside.audit.events import AuditEvent
from vaultside.audit.sinks import AuditBroker
from vaultside.clock import Clock
from vaultside.errors import ConflictError, NotFoundError, VaultsideError
from vaultside.kv.store import KVStore
from vaultside.lifecycle import LoopTask
from vaultside.rotation.authority import Grant, RotationAuthority
from vaultside.rotation.base import RotationContext, RotationStepError, Target
from vaultside.rotation.journal import Journal, JournalEntry
from vaultside.rotation.metrics import RotationMetrics
from vaultside.rotation.policy import RotationPolicy
from vaultside.rotation.state import HistoryEntry, RotationState, RotationStore
from vaultside.rotation.targets import TargetFactory
from vaultside.storage.base import StorageBackend

log = logging.getLogger(__name__)

# Called after a rotation is promoted: (path, new version) — re-delivery hooks in here.
RotatedHook = Callable[[str, int], Awaitable[None]]


def describe(exc: BaseException) -> str:
    """A safe one-line description: our own messages, or just the foreign exception's type."""
    if isinstance(exc, RotationStepError):
        return exc.message
    if isinstance(exc, VaultsideError):
        return exc.message
    # SECURITY: foreign exception texts may quote inputs (a DSN, a value): only the type.
    return type(exc).__name__


def plan_next(policy: RotationPolicy, after: float, jitter_fraction: float) -> float:
    """The next run after ``after``: schedule, then window, then jitter (kept in the window)."""
    when = policy.schedule_after(after)
    if policy.window is not None:
        when = policy.window.next_open(when)
    when += policy.jitter * jitter_fraction
    if policy.window is not None:
        when = policy.window.next_open(when)
    return when


def plan_retry(policy: RotationPolicy, now: float, failures: int) -> float:
    """When to retry after the ``failures``-th consecutive failure (exponential backoff)."""
    when = now + max(policy.backoff, 1.0) * (2 ** max(failures - 1, 0))
    return policy.window.next_open(when) if policy.window is not None else when


class RotationEngine:
    """Runs rotations and recovers interrupted ones."""

    def __init__(
        self,
        kv: KVStore,
        storage: StorageBackend,
        targets: TargetFactory,
        *,
        authority: RotationAuthority,
        clock: Clock,
        audit: AuditBroker | None = None,
        metrics: RotationMetrics | None = None,
        jitter: Callable[[], float] | None = None,
        lock_ttl: float = 30.0,
    ) -> None:
        self.kv = kv
        self.storage = storage
        self.targets = targets
        self.authority = authority
        self.clock = clock
        self.audit = audit
        self.metrics = metrics or RotationMetrics()
        self.journal = Journal(storage)
        self.store = RotationStore(storage)
        self.hooks: list[RotatedHook] = []
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._locks: dict[str, asyncio.Lock] = {}
        # A crashed holder's per-secret lease expires after this; live holders renew it.
        self.lock_ttl = lock_ttl
        # Journaled paths whose lock another process held at the last ``recover``.
        self.unrecovered: set[str] = set()
        self._jitter = jitter or (lambda: int.from_bytes(os.urandom(4), "big") / 2**32)

    def jitter_fraction(self) -> float:
        """A uniform number in [0, 1) for jitter (injectable for tests)."""
        return self._jitter()

    # -- running -----------------------------------------------------------------------------

    async def rotate(
        self, path: str, policy: RotationPolicy, *, grant: Grant | None, trigger: str
    ) -> HistoryEntry:
        """Rotate ``path`` now; records state and history. ``ConflictError`` if one is running.

        Returns the run's history entry (``result`` "ok" or "failed"); does not raise for a
        failed rotation — the failure is recorded, audited and counted, and a retry planned.
        """
        lock = self._locks.setdefault(path, asyncio.Lock())
        if lock.locked():
            raise ConflictError(f"a rotation of {path!r} is already running")
        async with lock:
            lease = f"lock/{path}"
            if not await self.storage.try_lock(lease, self.holder, self.lock_ttl):
                raise ConflictError(f"a rotation of {path!r} is running in another process")
            try:
                async with LoopTask(lambda: self._keep(lease), name="rotation-lock-keeper"):
                    await self._recover_one(path)
                    if await self.journal.get(path) is not None:
                        raise ConflictError(
                            f"an interrupted rotation of {path!r} could not be rolled back yet"
                        )
                    return await self._rotate_locked(path, policy, grant, trigger)
            finally:
                await self.storage.unlock(lease, self.holder)

    async def _keep(self, lease: str) -> None:
        """Renew ``lease`` while a rotation runs, so only a dead holder's lease expires."""
        while True:
            await self.clock.sleep(self.lock_ttl / 3)
            if not await self.storage.try_lock(lease, self.holder, self.lock_ttl):
                log.error("lost a rotation lease while rotating", extra={"lease": lease})

    async def _rotate_locked(
        self, path: str, policy: RotationPolicy, grant: Grant | None, trigger: str
    ) -> HistoryEntry:
        kind = policy.target.kind
        started_mono = self.clock.monotonic()
        started = self.clock.now()
        run_id = uuid.uuid4().hex
        state = await self.store.get_state(path)
        try:
            version, base = await self._run(path, policy, grant, run_id, trigger)
        except RotationStepError as exc:
            now = self.clock.now()
            entry = HistoryEntry(run_id, started, now, trigger, "failed", exc.step, exc.message)
            state.failures += 1
            if state.failures < policy.max_attempts:
                state.next_run = plan_retry(policy, now, state.failures)
            else:
                state.failures = 0
                state.next_run = plan_next(policy, now, self.jitter_fraction())
            state.last_step, state.last_error = exc.step, exc.message
            self.metrics.rotations.labels(kind, "failed").inc()
        else:
            now = self.clock.now()
            entry = HistoryEntry(run_id, started, now, trigger, "ok", version=version)
            state.failures = 0
            state.version, state.previous_version = version, (base or None)
            await self._queue_grace(path, policy, base, now, state)
            state.next_run = plan_next(policy, now, self.jitter_fraction())
            state.last_step, state.last_error = "finish", None
            self.metrics.rotations.labels(kind, "ok").inc()
            self.metrics.duration.labels(kind).observe(self.clock.monotonic() - started_mono)
        state.last_run, state.last_result = now, entry.result
        await self.store.add_history(path, state, entry)
        await self.store.put_state(path, state)
        ms = (self.clock.monotonic() - started_mono) * 1000
        await self._audit(path, kind, entry, grant, ms)
        if entry.result == "ok" and entry.version is not None:
            await self._delivered(path, entry.version)
        return entry

    async def _queue_grace(
        self, path: str, policy: RotationPolicy, base: int, now: float, state: RotationState
    ) -> None:
        """With a grace period, queue the replaced version's own deletion deadline."""
        if policy.grace > 0 and base:
            state.grace_until = now + policy.grace
            await self.store.add_grace(path, base, state.grace_until)

    async def refuse(self, path: str, message: str, *, kind: str, trigger: str) -> HistoryEntry:
        """Record and audit a run refused before it could start (e.g. a stored policy that is
        no longer valid); it is not planned again until the policy is set again."""
        now = self.clock.now()
        entry = HistoryEntry(uuid.uuid4().hex, now, now, trigger, "failed", "authorize", message)
        state = await self.store.get_state(path)
        state.last_run, state.last_result = now, "failed"
        state.last_step, state.last_error, state.next_run = "authorize", message, None
        await self.store.add_history(path, state, entry)
        await self.store.put_state(path, state)
        self.metrics.rotations.labels(kind, "failed").inc()
        await self._audit(path, kind, entry, None, 0.0)
        return entry

    async def _current(self, path: str) -> tuple[dict[str, str] | None, int]:
        try:
            base = (await self.kv.read_metadata(path)).current_version
        except NotFoundError:
            return None, 0
        try:
            return dict((await self.kv.get(path)).data), base
        except NotFoundError:
            return None, base  # the latest version is deleted: rotate over it

    async def _authorize(self, path: str, policy: RotationPolicy, grant: Grant | None) -> Target:
        """The target, once the recorded authority still covers the run (else step fails)."""
        try:
            exists = await self.kv.exists(path)
            # SECURITY: checked before every run, against the token's state now.
            await self.authority.check_run(grant, path, policy, exists=exists)
            return self.targets.build(policy.target)
        except VaultsideError as exc:
            raise RotationStepError("authorize", exc.message) from exc

    async def _run(
        self, path: str, policy: RotationPolicy, grant: Grant | None, run_id: str, trigger: str
    ) -> tuple[int, int]:
        target = await self._authorize(path, policy, grant)
        current, base = await self._current(path)
        pending = {**(current or {}), **self.targets.generator(policy.generator).generate()}
        ctx = RotationContext(path, policy, run_id, current, pending, base)
        entry = JournalEntry(path, run_id, "pending", base, self.clock.now(), trigger, pending)
        entry.current, entry.policy = current, policy.to_json()
        await self.journal.write(entry)
        step = "pending"
        try:
            await target.create_pending(ctx)
            for step, action in (("set", target.set), ("test", target.test)):
                entry.step, entry.pending, entry.state = step, ctx.pending, ctx.state
                await self.journal.write(entry)
                await action(ctx)
            step = "finish"
            entry.step, entry.pending, entry.state = step, ctx.pending, ctx.state
            await self.journal.write(entry)
            meta = await self.kv.put(path, ctx.pending, cas=base)
        except Exception as exc:
            log.warning(
                "rotation step failed",
                extra={"path": path, "step": step, "error": describe(exc), "run_id": run_id},
            )
            await self._rollback(ctx, target)
            raise RotationStepError(step, describe(exc)) from exc
        await self._finish_target(ctx, target)
        await self.journal.discard(path)
        return meta.version, base

    async def _finish_target(self, ctx: RotationContext, target: Target) -> None:
        try:
            await target.finish(ctx)
        except Exception as exc:
            # Promotion already happened; the new value is current and works (it was tested).
            log.error("target finish failed", extra={"path": ctx.path, "error": describe(exc)})

    async def _rollback(self, ctx: RotationContext, target: Target) -> None:
        """Undo ``set``; the journal entry is kept if the rollback itself fails."""
        try:
            await target.rollback(ctx)
        except Exception as exc:
            self.metrics.rollbacks.labels(target.kind, "failed").inc()
            log.error("rollback failed", extra={"path": ctx.path, "error": describe(exc)})
            return
        self.metrics.rollbacks.labels(target.kind, "ok").inc()
        await self.journal.discard(ctx.path)

    async def _audit(
        self, path: str, kind: str, entry: HistoryEntry, grant: Grant | None, ms: float
    ) -> None:
        if self.audit is None:
            return
        error = None if entry.error is None else f"{entry.step}: {entry.error}"
        event = AuditEvent(
            time=self.clock.now(),
            request_id=entry.run_id,
            accessor=None if grant is None else grant.accessor,
            policies=() if grant is None else grant.policies,
            operation="rotation.rotate",
            path=f"rotation/{path}",
            status=200 if entry.result == "ok" else 403 if entry.step == "authorize" else 500,
            client=entry.trigger,
            latency_ms=ms,
            error=error,
            extra={"target": kind, "result": entry.result, "version": str(entry.version or "")},
        )
        try:
            await self.audit.log(event)
        except VaultsideError:
            log.error("audit unavailable for a rotation event", extra={"path": path})

    async def _delivered(self, path: str, version: int) -> None:
        for hook in self.hooks:
            try:
                await hook(path, version)
            except Exception as exc:
                log.error("re-delivery hook failed", extra={"path": path, "error": describe(exc)})

    # -- recovery ------------------------------------------------------------------------------

    async def recover(self) -> int:
        """Resume or roll back every journaled rotation; returns how many were handled.

        A path whose lock another process holds is left alone: that process is rotating it,
        or it crashed and its lock lives until the lock's TTL ends. Such paths are kept in
        ``unrecovered`` and the scheduler calls ``recover`` again on its next ticks until
        none is left, so a crashed rotation is never left half done until its next run.
        """
        count = 0
        self.unrecovered.clear()
        for path in await self.journal.paths():
            lock = self._locks.setdefault(path, asyncio.Lock())
            if lock.locked():
                continue  # this process is rotating it (``rotate`` recovers first)
            async with lock:
                lease = f"lock/{path}"
                if not await self.storage.try_lock(lease, self.holder, self.lock_ttl):
                    self.unrecovered.add(path)  # another process's, live or not yet expired
                    continue
                try:
                    count += await self._recover_one(path)
                except Exception as exc:
                    # The entry stays; the next rotation of this path (or start) tries again.
                    log.error("recovery failed", extra={"path": path, "error": describe(exc)})
                finally:
                    await self.storage.unlock(lease, self.holder)
        return count

    async def _recover_one(self, path: str) -> int:
        entry = await self.journal.get(path)
        if entry is None:
            return 0
        if entry.policy:
            policy = RotationPolicy.model_validate(entry.policy)
        else:
            policy = await self.store.get_policy(path)
        target = self.targets.build(policy.target)
        ctx = RotationContext(
            path, policy, entry.run_id, entry.current, entry.pending, entry.base_version
        )
        ctx.state = entry.state
        if entry.step == "finish" and await self._promote(ctx):
            await self._finish_target(ctx, target)
            await self.journal.discard(path)
            state = await self.store.get_state(path)
            meta = await self.kv.read_metadata(path)
            now = self.clock.now()
            state.version, state.previous_version = meta.current_version, entry.base_version or None
            await self._queue_grace(path, policy, entry.base_version, now, state)
            state.last_run, state.last_result, state.last_step = now, "ok", "finish"
            state.next_run = plan_next(policy, now, self.jitter_fraction())
            hist = HistoryEntry(
                entry.run_id, entry.started, now, entry.trigger, "ok", version=state.version
            )
            hist.extra["recovered"] = "completed"
            await self.store.add_history(path, state, hist)
            await self.store.put_state(path, state)
            log.info("rotation completed after restart", extra={"path": path})
            await self._delivered(path, meta.current_version)
            return 1
        await self._rollback(ctx, target)
        state = await self.store.get_state(path)
        now = self.clock.now()
        hist = HistoryEntry(
            entry.run_id, entry.started, now, entry.trigger, "failed", entry.step, "interrupted"
        )
        hist.extra["recovered"] = "rolled back"
        state.last_run, state.last_result = now, "failed"
        state.last_step, state.last_error = entry.step, "interrupted; rolled back"
        await self.store.add_history(path, state, hist)
        await self.store.put_state(path, state)
        log.warning("interrupted rotation rolled back", extra={"path": path, "step": entry.step})
        return 1

    async def _promote(self, ctx: RotationContext) -> bool:
        """Finish an interrupted promotion; False if the store moved on (then roll back)."""
        try:
            current = await self.kv.get(ctx.path)
        except NotFoundError:
            current = None
        if current is not None and current.meta.version == ctx.base_version + 1:
            same = sorted(current.data) == sorted(ctx.pending) and all(
                hmac.compare_digest(current.data[k].encode(), ctx.pending[k].encode())
                for k in ctx.pending
            )
            if same:
                return True  # the put landed before the crash
        try:
            await self.kv.put(ctx.path, ctx.pending, cas=ctx.base_version)
        except ConflictError:
            return False
        return True
