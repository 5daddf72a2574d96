"""Periodic scans of running containers inside the server, on one server at a time.

Every ``interval`` seconds each server tries to take (or renew) the storage lease
``periodic`` of the scan view (``scan/periodic``); only its holder scans the running containers
of its Docker engine (``DOCKER_HOST``), known values included. The finished record (findings
redacted) is kept through the barrier under ``results/<id>`` of that view
(``scan.results.ScanResults``) — the newest
``keep`` of them — so any server or worker answers ``GET /v1/scans/{id}`` and
``GET /v1/scans`` for it. The lease lasts two intervals, as in ``auth/tidy.py``.

All time comes from the injected ``Clock``; ``tick`` is one step, which tests drive directly.
"""

from __future__ import annotations

import logging

from vaultside.clock import Clock
from vaultside.cluster.leader import LeaderJob
from vaultside.scan.results import ScanMetrics, ScanRecord, ScanResults
from vaultside.scan.service import ScanService
from vaultside.storage.base import StorageBackend

log = logging.getLogger(__name__)

# In the scan service's storage view (wiring: ``scan/``).
PERIODIC_LEASE = "periodic"


class PeriodicScanner(LeaderJob[ScanRecord]):
    """A component that scans running containers every ``interval`` seconds on the leader."""

    job_name = "scan-periodic"

    def __init__(
        self,
        scans: ScanService,
        storage: StorageBackend,
        results: ScanResults,
        *,
        clock: Clock,
        interval: float,
        metrics: ScanMetrics,
        holder: str | None = None,
        leaders: StorageBackend | None = None,
    ) -> None:
        self.metrics = metrics
        super().__init__(
            storage, PERIODIC_LEASE, clock=clock, interval=interval, holder=holder, leaders=leaders
        )
        self.scans = scans
        self.results = results

    def on_leadership(self, leader: bool) -> None:
        self.metrics.leader.set(1 if leader else 0)

    async def work(self) -> ScanRecord:
        """Scan the running containers once; the finished record (also stored)."""
        record = await self.scans.start("containers", trigger="periodic")
        record = await self.scans.wait(record.id)
        self.metrics.observe(record)
        await self.results.put(record)
        log.info(
            "periodic scan finished",
            extra={"scan_id": record.id, "status": record.status, "findings": len(record.findings)},
        )
        return record
