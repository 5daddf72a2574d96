"""Who leads each leader-only job: the per-job metric and the data of ``GET /v1/sys/leaders``.

Each leader-only job is elected through a storage lease (``StorageBackend.try_lock``):

- ``rotation-scheduler`` (``rotation/scheduler``), ``token-tidy`` (``auth/token-tidy``),
  ``scan-periodic`` (``scan/periodic``), ``rewrap`` (``sys/rewrap``, held only while a rewrap
  runs) and ``broker-lease-renewal/<broker>`` (``broker/<broker>/lease-renewal``).

Each job takes its lease through its owner's storage view, so the names above are the full
lease names (``LeaderJobRef.lease``). A job reports every election result with ``report``: it
sets ``vaultside_leader{job}`` (1 while this process holds the lease) and, when this process
*becomes* leader, writes ``<job>`` = ``{"holder", "since"}`` into the leader records' own view
(wiring: ``cluster/leaders/``; one write per change of leader, never per renewal).
``leader_status`` reads the lease table (holder, until) and that record (since, if it names the
same holder), so any server can answer for all of them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from prometheus_client import Gauge

from vaultside.clock import Clock
from vaultside.errors import VaultsideError
from vaultside.storage.base import LockInspector, StorageBackend

log = logging.getLogger(__name__)

LEADER = Gauge(
    "vaultside_leader",
    "1 while this process holds the leader lease of the job (0 otherwise)",
    ["job"],
)

# (job, holder) pairs this process currently leads: a report of True for a new pair is a
# change of leader (several holders of one job can live in one process, e.g. in tests).
_leading: set[tuple[str, str]] = set()


@dataclass(frozen=True, slots=True)
class LeaderJobRef:
    """One leader-only job: its name, its storage lease, and whether this server runs it."""

    job: str
    lease: str
    enabled: bool = True


def mark(job: str, holder: str, leader: bool) -> bool:
    """Set the metric for ``job``; True when ``holder`` has just become its leader."""
    LEADER.labels(job).set(1 if leader else 0)
    key = (job, holder)
    if not leader:
        _leading.discard(key)
        return False
    if key in _leading:
        return False
    _leading.add(key)
    return True


async def report(
    records: StorageBackend | None, clock: Clock, job: str, holder: str, leader: bool
) -> None:
    """Record one election result of ``job`` (metric; since-when on a change of leader, in
    ``records``, the leader records' view; None: the metric only)."""
    if not mark(job, holder, leader) or records is None:
        return
    log.info("leader_elected", extra={"job": job, "holder": holder})
    body = {"holder": holder, "since": clock.now()}
    try:
        await records.put(job, json.dumps(body).encode())
    except VaultsideError as exc:
        # Only "since" is lost (shown as null); the election itself stands.
        log.warning("leader_since_not_recorded", extra={"job": job, "error": exc.message})


async def leader_status(
    locks: StorageBackend, records: StorageBackend | None, jobs: list[LeaderJobRef]
) -> list[dict[str, object]]:
    """Holder, since and until (epoch seconds, None if unknown) of each job's lease (full
    names, in ``locks``: the barrier), since from ``records`` (the leader records' view)."""
    out: list[dict[str, object]] = []
    for ref in jobs:
        held = None
        if isinstance(locks, LockInspector):
            held = await locks.lock_holder(ref.lease)
        since = None
        if held is not None and records is not None:
            record = await records.get(ref.job)
            if record is not None:
                body = json.loads(record.value)
                if body.get("holder") == held[0]:
                    since = float(body["since"])
        out.append(
            {
                "job": ref.job,
                "lease": ref.lease,
                "enabled": ref.enabled,
                "holder": held[0] if held else None,
                "since": since,
                "until": held[1] if held else None,
            }
        )
    return out
