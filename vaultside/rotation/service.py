"""The rotation service: what the API and CLI call, and the component ``wiring`` starts.

``start`` (after unseal) spawns the scheduler loop; ``close`` cancels it and releases the
leader lease. Errors callers should handle: ``InvalidRequestError`` (bad policy, naming the
field), ``PermissionDeniedError`` (the caller lacks something the rotation would touch, named
in the message), ``NotFoundError`` (no policy), ``ConflictError`` (a rotation is already
running).

``set_policy`` records who set the policy (``authority.Grant``); every later run of it,
scheduled or not, executes with that authority and is refused once it is gone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vaultside.audit.sinks import AuditBroker
from vaultside.clock import Clock
from vaultside.errors import InvalidRequestError, NotFoundError
from vaultside.kv.paths import validate_path
from vaultside.kv.store import KVStore
from vaultside.lifecycle import LoopTask
from vaultside.rotation.authority import RotationAuthority
from vaultside.rotation.base import Redelivery
from vaultside.rotation.engine import RotationEngine, plan_next
from vaultside.rotation.metrics import RotationMetrics
from vaultside.rotation.policy import RotationPolicy, parse_policy
from vaultside.rotation.propagate import Consumer, ConsumerRegistry
from vaultside.rotation.scheduler import RotationScheduler
from vaultside.rotation.state import HistoryEntry, PolicyRecord
from vaultside.rotation.targets import TargetFactory
from vaultside.storage.base import StorageBackend

if TYPE_CHECKING:
    from vaultside.auth.records import TokenInfo


class RotationService:
    """Policies, rotate-now, status, history and consumers; owns the scheduler task."""

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
        schedule: bool = True,
        lease_ttl: float = 30.0,
        concurrency: int = 4,
        consumer_gone_after: float = 120.0,
        consumer_ttl: float = 86400.0,
        leaders: StorageBackend | None = None,
    ) -> None:
        self.clock = clock
        self.engine = RotationEngine(
            kv,
            storage,
            targets,
            authority=authority,
            clock=clock,
            audit=audit,
            metrics=metrics,
            lock_ttl=lease_ttl,
        )
        self.scheduler = RotationScheduler(
            self.engine, clock=clock, lease_ttl=lease_ttl, concurrency=concurrency, leaders=leaders
        )
        self.consumers = ConsumerRegistry(
            storage, clock, stale_after=consumer_gone_after, ttl=consumer_ttl
        )
        self.add_redelivery(self.consumers)
        self.store = self.engine.store
        self.kv = kv
        self._schedule = schedule
        self._loop = LoopTask(self.scheduler.run, name="rotation-scheduler")

    def add_redelivery(self, redelivery: Redelivery) -> None:
        """Tell ``redelivery`` about every promoted rotation from now on (wiring calls this)."""
        self.engine.hooks.append(redelivery.delivered)

    async def start(self) -> None:
        """Start the scheduler loop (it recovers interrupted rotations once it leads)."""
        if self._schedule:
            self._loop.start()

    async def close(self) -> None:
        """Stop the scheduler. Idempotent."""
        await self._loop.close()

    async def set_policy(self, path: str, body: object, *, by: TokenInfo) -> RotationPolicy:
        """Validate and store a policy set by ``by``; re-plans the next run from now.

        ``by`` must hold everything the rotation will touch (``authority.needs``); its
        accessor and policies are stored with the policy as the runs' authority.
        """
        path = validate_path(path)
        policy = parse_policy(body)
        exists = await self.kv.exists(path)
        grant = await self.engine.authority.check_write(
            by, path, policy, exists=exists, now=self.clock.now()
        )
        try:
            self.engine.targets.build(policy.target)
        except InvalidRequestError as exc:
            raise InvalidRequestError("invalid rotation policy", details=[exc.message]) from None
        state = await self.store.get_state(path)
        state.next_run = plan_next(policy, self.clock.now(), self.engine.jitter_fraction())
        state.failures = 0
        await self.store.put_state(path, state)
        await self.store.put_policy(path, policy, grant)
        return policy

    async def get_policy(self, path: str) -> RotationPolicy:
        """The stored policy (``NotFoundError`` if none)."""
        return await self.store.get_policy(path)

    async def delete_policy(self, path: str) -> None:
        """Stop rotating ``path``."""
        await self.store.delete_policy(path)

    async def list_policies(self) -> list[str]:
        """Every path with a policy."""
        return await self.store.policy_paths()

    async def rotate_now(self, path: str) -> HistoryEntry:
        """Rotate ``path`` immediately (one attempt; a failure plans a retry)."""
        path = validate_path(path)
        record = await self.store.get_record(path)
        # Runs with the authority recorded when the policy was set, not the caller's.
        return await self.engine.rotate(path, record.policy, grant=record.grant, trigger="manual")

    async def status(self, path: str) -> dict[str, object]:
        """Policy (None if the path has none), the authority (grant) its runs execute with,
        state, the store's current version, pending grace deletions and each consumer's held
        version — for any path.

        "Current" is measured against the KV store's current version (so it is right before
        the first rotation and after a manual write), not against the last rotation.
        """
        path = validate_path(path)
        try:
            record: PolicyRecord | None = await self.store.get_record(path)
        except NotFoundError:
            record = None
        state = await self.store.get_state(path)
        try:
            current: int | None = (await self.engine.kv.read_metadata(path)).current_version
        except NotFoundError:
            current = None
        holders = await self.consumers.holders(path)
        for h in holders:
            h["current"] = current is not None and h["version"] == current
        in_flight = await self.engine.journal.get(path)
        return {
            "path": path,
            "policy": None if record is None else record.policy.to_json(),
            "current_version": current,
            # Whose authority the runs execute with (an accessor is not a credential).
            "authority": None if record is None or record.grant is None else record.grant.to_json(),
            "state": state.to_json(),
            "grace": [
                {"version": e.version, "until": e.due} for e in await self.store.grace_of(path)
            ],
            "in_flight": None if in_flight is None else in_flight.step,
            "consumers": holders,
        }

    async def history(self, path: str, limit: int = 50) -> list[HistoryEntry]:
        """The newest runs first."""
        return await self.store.history(path, limit)

    async def heartbeat(self, consumer: Consumer) -> None:
        """Record what a consumer holds."""
        await self.consumers.heartbeat(consumer)
