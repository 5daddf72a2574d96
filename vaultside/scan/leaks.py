"""Leaked managed secrets → rotation: which leaks to rotate, who may, and what happened.

A leaked CURRENT version of a vaultside-managed secret is rotated through the rotation
service when its rotation policy says ``on_leak: rotate`` (any in-server scan, periodic ones
included), or when the scan's requester asked (``rotate_leaked``) and holds ``rotate`` on
``rotation/<path>`` — checked per secret. A requested secret without a rotation policy is
reported as "leaked, no rotation policy" and left alone. Outcomes carry names and versions,
never values, and each one is audited.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from vaultside.audit.events import AuditEvent
from vaultside.errors import ConflictError, NotFoundError, VaultsideError
from vaultside.scan.base import Finding

if TYPE_CHECKING:  # annotations only: keeps `vaultside scan` from importing rotation (~70 ms)
    from vaultside.rotation.policy import RotationPolicy
    from vaultside.rotation.state import HistoryEntry

log = logging.getLogger(__name__)


class Rotator(Protocol):
    """What leak rotation needs of ``RotationService``."""

    async def rotate_now(self, path: str) -> HistoryEntry:
        """Rotate ``path`` now; ``NotFoundError`` if it has no policy."""
        ...

    async def get_policy(self, path: str) -> RotationPolicy:
        """The stored policy; ``NotFoundError`` if none."""
        ...


class Auditor(Protocol):
    """What leak rotation needs of ``AuditBroker``."""

    async def log(self, event: AuditEvent) -> None:
        """Record one event."""
        ...


@dataclass(frozen=True)
class Requester:
    """Who asked for the scan, and a per-secret check of ``rotate`` on ``rotation/<path>``."""

    accessor: str | None
    policies: tuple[str, ...]
    may_rotate: Callable[[str], Awaitable[bool]] = field(repr=False)


@dataclass(frozen=True, slots=True)
class RotationOutcome:
    """What rotate-leaked did to one secret (name and versions only, never values)."""

    path: str
    leaked_version: int
    outcome: str  # rotated / no-policy / denied / failed / conflict / unavailable
    version: int | None = None  # the new current version when rotated
    note: str = ""
    by: str = "request"  # request (rotate_leaked) / policy (on_leak: rotate)

    def to_json(self) -> dict[str, object]:
        """The API shape."""
        return {
            "path": self.path,
            "leaked_version": self.leaked_version,
            "outcome": self.outcome,
            "version": self.version,
            "note": self.note,
            "by": self.by,
        }


_STATUS = {"rotated": 200, "denied": 403, "no-policy": 404, "conflict": 409}


def leaked_current(findings: Sequence[Finding]) -> dict[str, int]:
    """Path → leaked version for every managed secret whose CURRENT version was found."""
    out: dict[str, int] = {}
    for f in findings:
        if f.known is not None and f.known.status == "current":
            out.setdefault(f.known.path, f.known.version)
    return out


async def _rotate_one(rotator: Rotator | None, path: str, leaked: int) -> RotationOutcome:
    if rotator is None:
        return RotationOutcome(
            path, leaked, "unavailable", note="rotation is not enabled on this server"
        )
    try:
        entry = await rotator.rotate_now(path)
    except NotFoundError:
        return RotationOutcome(path, leaked, "no-policy", note="leaked, no rotation policy")
    except ConflictError:
        return RotationOutcome(path, leaked, "conflict", note="a rotation is already running")
    except VaultsideError as exc:
        return RotationOutcome(path, leaked, "failed", note=exc.message)
    if entry.result != "ok":
        return RotationOutcome(
            path, leaked, "failed", note=f"rotation failed at {entry.step}: {entry.error}"
        )
    return RotationOutcome(path, leaked, "rotated", version=entry.version)


async def _on_leak_rotate(rotator: Rotator | None, path: str) -> bool:
    if rotator is None:
        return False
    try:
        policy = await rotator.get_policy(path)
    except NotFoundError:
        return False
    return policy.on_leak == "rotate"


async def rotate_leaks(
    findings: Sequence[Finding],
    *,
    scan_id: str,
    requester: Requester | None,
    rotator: Rotator | None,
    audit: Auditor | None,
    now: Callable[[], float],
) -> list[RotationOutcome]:
    """Rotate each leaked current secret whose policy or requester says so; audit each."""
    outcomes: list[RotationOutcome] = []
    for path, leaked in sorted(leaked_current(findings).items()):
        if await _on_leak_rotate(rotator, path):
            # The policy's author (update on rotation/<path>) chose this for every leak.
            outcome = replace(await _rotate_one(rotator, path, leaked), by="policy")
        elif requester is None:
            continue
        elif not await requester.may_rotate(path):
            # SECURITY: checked per secret, not once for the scan: ``scan`` on ``scans`` says
            # nothing about which secrets the caller may rotate.
            outcome = RotationOutcome(
                path, leaked, "denied", note=f"needs the rotate capability on rotation/{path}"
            )
        else:
            outcome = await _rotate_one(rotator, path, leaked)
        outcomes.append(outcome)
        if audit is not None:
            event = AuditEvent(
                time=now(),
                request_id=scan_id,
                accessor=None if requester is None else requester.accessor,
                policies=() if requester is None else requester.policies,
                operation="scan.rotate_leaked",
                path=f"rotation/{path}",
                status=_STATUS.get(outcome.outcome, 500),
                client="scan",
                latency_ms=0.0,
                error=None if outcome.outcome == "rotated" else outcome.note,
                extra={
                    "scan_id": scan_id,
                    "outcome": outcome.outcome,
                    "leaked_version": str(leaked),
                    "version": str(outcome.version or ""),
                    "by": outcome.by,
                },
            )
            try:
                await audit.log(event)
            except VaultsideError:
                log.error("audit unavailable for a leak rotation", extra={"scan_id": scan_id})
    return outcomes
