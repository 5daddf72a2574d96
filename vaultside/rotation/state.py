"""Persisted rotation records: policies, schedule state, history and consumers.

Keys, in the rotation service's storage view (wiring: ``rotation/`` of the barrier)::

    policy/<path>        {"policy": ..., "grant": ...}: the policy and the authority
                         it was set with (one record, so they always change together)
    state/<path>         next run, last result, failures, grace
    history/<path>/<n>   one finished or failed run (the newest ``HISTORY_KEEP`` kept)
    generation           bumped on every policy change (schedulers reload on change)
    grace/<path>/<v>     version ``v`` of ``path`` is deleted when its grace ends

The grace queue holds one record per replaced version, each with its own deadline, so a
rotation within another's grace period (``grace`` >= ``every``, or a manual rotation) never
drops an earlier version's deletion; it survives restarts and leader changes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from pydantic import ValidationError

from vaultside.errors import InvalidRequestError, NotFoundError
from vaultside.kv.paths import validate_path
from vaultside.rotation.authority import Grant
from vaultside.rotation.policy import RotationPolicy
from vaultside.storage.base import StorageBackend

POLICY = "policy/"
STATE = "state/"
HISTORY = "history/"
GENERATION = "generation"
GRACE = "grace/"
HISTORY_KEEP = 50


@dataclass
class RotationState:
    """Schedule and outcome of one secret's rotations (no secret values)."""

    next_run: float | None = None
    last_run: float | None = None
    last_result: str | None = None  # "ok" | "failed"
    last_error: str | None = None
    last_step: str | None = None
    version: int | None = None  # the KV version the last successful rotation made current
    previous_version: int | None = None
    grace_until: float | None = None  # the latest pending deletion (each is in the grace queue)
    failures: int = 0
    history_seq: int = 0

    def to_json(self) -> dict[str, object]:
        """JSON-ready fields."""
        return asdict(self)


@dataclass(frozen=True)
class GraceEntry:
    """Version ``version`` of ``path`` is soft-deleted at ``due``."""

    path: str
    version: int
    due: float


@dataclass
class HistoryEntry:
    """One rotation run."""

    run_id: str
    started: float
    ended: float
    trigger: str
    result: str
    step: str | None = None
    error: str | None = None
    version: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """JSON-ready fields."""
        return asdict(self)


@dataclass(frozen=True)
class PolicyRecord:
    """A stored policy and the authority it was set with (None: set before grants existed)."""

    policy: RotationPolicy
    grant: Grant | None


class RotationStore:
    """CRUD for rotation records over a ``StorageBackend``."""

    def __init__(self, storage: StorageBackend) -> None:
        self._storage = storage

    async def put_policy(self, path: str, policy: RotationPolicy, grant: Grant) -> None:
        """Create or replace the policy of ``path`` with the authority that set it."""
        path = validate_path(path)
        doc = {"policy": policy.to_json(), "grant": grant.to_json()}
        await self._storage.put(POLICY + path, json.dumps(doc).encode())
        await self._bump()

    async def get_record(self, path: str) -> PolicyRecord:
        """Policy and grant of ``path``; ``NotFoundError`` if none, ``InvalidRequestError``
        if the stored policy is no longer valid (e.g. an API-set argv from an old version)."""
        rec = await self._storage.get(POLICY + validate_path(path))
        if rec is None:
            raise NotFoundError(f"no rotation policy for {path!r}")
        doc = json.loads(rec.value)
        # Records written before grants existed are the bare policy: no authority recorded.
        raw, grant = (doc["policy"], doc.get("grant")) if "policy" in doc else (doc, None)
        try:
            policy = RotationPolicy.model_validate(raw)
        except ValidationError:
            raise InvalidRequestError(
                f"the stored rotation policy of {path!r} is no longer valid; set it again"
            ) from None
        return PolicyRecord(policy, Grant.from_json(grant) if isinstance(grant, dict) else None)

    async def get_policy(self, path: str) -> RotationPolicy:
        """The policy of ``path``; ``NotFoundError`` if it has none."""
        return (await self.get_record(path)).policy

    async def delete_policy(self, path: str) -> None:
        """Remove the policy (state and history stay for inspection)."""
        path = validate_path(path)
        if not await self._storage.delete(POLICY + path):
            raise NotFoundError(f"no rotation policy for {path!r}")
        await self._bump()

    async def policy_paths(self) -> list[str]:
        """Every path that has a policy."""
        return [k[len(POLICY) :] for k in await self._storage.list(POLICY)]

    async def generation(self) -> int:
        """A number that changes whenever any policy changes."""
        rec = await self._storage.get(GENERATION)
        return 0 if rec is None else rec.revision

    async def _bump(self) -> None:
        await self._storage.put(GENERATION, b"{}")

    async def get_state(self, path: str) -> RotationState:
        """The state of ``path`` (empty if it never ran)."""
        rec = await self._storage.get(STATE + path)
        return RotationState() if rec is None else RotationState(**json.loads(rec.value))

    async def put_state(self, path: str, state: RotationState) -> None:
        """Persist the state of ``path``."""
        await self._storage.put(STATE + path, json.dumps(state.to_json()).encode())

    async def add_history(self, path: str, state: RotationState, entry: HistoryEntry) -> None:
        """Append a run to the history (the caller persists ``state`` afterwards)."""
        state.history_seq += 1
        key = f"{HISTORY}{path}/{state.history_seq:012d}"
        await self._storage.put(key, json.dumps(entry.to_json()).encode())
        old = state.history_seq - HISTORY_KEEP
        if old > 0:
            await self._storage.delete(f"{HISTORY}{path}/{old:012d}")

    async def history(self, path: str, limit: int = HISTORY_KEEP) -> list[HistoryEntry]:
        """The newest runs first."""
        prefix = f"{HISTORY}{validate_path(path)}/"
        keys = [k for k in await self._storage.list(prefix) if "/" not in k[len(prefix) :]]
        out: list[HistoryEntry] = []
        for key in reversed(keys[-limit:]):
            rec = await self._storage.get(key)
            if rec is not None:
                out.append(HistoryEntry(**json.loads(rec.value)))
        return out

    # -- grace queue ---------------------------------------------------------------------------

    async def add_grace(self, path: str, version: int, due: float) -> None:
        """Queue the deletion of ``version`` of ``path`` at ``due``."""
        key = f"{GRACE}{validate_path(path)}/{version:012d}"
        await self._storage.put(key, json.dumps({"due": due}).encode())

    async def grace_keys(self) -> list[tuple[str, int]]:
        """Every queued (path, version), without reading deadlines (one list call)."""
        out = []
        for key in await self._storage.list(GRACE):
            path, _, version = key[len(GRACE) :].rpartition("/")
            if path and version.isdigit():
                out.append((path, int(version)))
        return out

    async def get_grace(self, path: str, version: int) -> GraceEntry | None:
        """The queued deletion of ``version`` of ``path``, if any."""
        rec = await self._storage.get(f"{GRACE}{path}/{version:012d}")
        if rec is None:
            return None
        return GraceEntry(path, version, float(json.loads(rec.value)["due"]))

    async def remove_grace(self, path: str, version: int) -> None:
        """Drop a queued deletion (done, or no longer wanted)."""
        await self._storage.delete(f"{GRACE}{path}/{version:012d}")

    async def grace_of(self, path: str) -> list[GraceEntry]:
        """The queued deletions of ``path``, oldest version first."""
        prefix = f"{GRACE}{validate_path(path)}/"
        out = []
        for key in await self._storage.list(prefix):
            version = key[len(prefix) :]
            if version.isdigit():
                entry = await self.get_grace(path, int(version))
                if entry is not None:
                    out.append(entry)
        return sorted(out, key=lambda e: e.version)
