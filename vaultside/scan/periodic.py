"""Periodic scans of running containers inside the server, on one server at a time.

Every ``interval`` seconds each server tries to take (or renew) the storage lease
``periodic`` of the scan view (``scan/periodic``); only its holder scans the running containers
of its Docker engine (``DOCKER_HOST``), known values included. The finished record (findings
redacted) is kept through the barrier under ``results/<id>`` of that view — the newest
``keep`` of them — so any server or worker answers ``GET /v1/scans/{id}`` and
``GET /v1/scans`` for it. The lease lasts two intervals, as in ``auth/tidy.py``.

All time comes from the injected ``Clock``; ``tick`` is one step, which tests drive directly.
"""

from __future__ import annotations

import json
import logging

from prometheus_client import CollectorRegistry, Counter, Gauge

from vaultside.clock import Clock
from vaultside.cluster.leader import LeaderJob
from vaultside.scan.base import Severity
from vaultside.scan.service import ScanRecord, ScanService, created_of
from vaultside.storage.base import StorageBackend

log = logging.getLogger(__name__)

# In the scan service's storage view (wiring: ``scan/``).
PERIODIC_LEASE = "periodic"
RESULTS = "results/"


class ScanMetrics:
    """Findings of the latest periodic scan by severity, and periodic runs by result."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.findings = Gauge(
            "vaultside_scan_periodic_findings",
            "Findings of the latest periodic container scan on this server, by severity.",
            ["severity"],
            registry=self.registry,
        )
        self.runs = Counter(
            "vaultside_scan_periodic_runs_total",
            "Periodic container scans run by this server, by result (done, failed).",
            ["result"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "vaultside_scan_periodic_leader",
            "1 while this process holds the periodic scan lease.",
            registry=self.registry,
        )

    def collectors(self) -> tuple[Gauge | Counter, ...]:
        """Everything to expose on ``/v1/sys/metrics``."""
        return (self.findings, self.runs, self.leader)

    def observe(self, record: ScanRecord) -> None:
        """Count a finished periodic scan and publish its findings by severity."""
        self.runs.labels(record.status).inc()
        if record.status != "done":
            return
        for sev in Severity:
            count = sum(1 for f in record.findings if f.severity == sev)
            self.findings.labels(sev.name.lower()).set(count)


class ScanResults:
    """Finished scan records (redacted JSON) through the barrier, newest ``keep`` kept."""

    def __init__(self, storage: StorageBackend, *, keep: int = 50) -> None:
        self.storage = storage
        self.keep = keep

    async def put(self, record: ScanRecord) -> None:
        """Store a finished record, then drop the oldest beyond ``keep``."""
        doc = record.to_json()
        # SECURITY: to_json carries redacted findings only; the barrier encrypts them anyway.
        await self.storage.put(RESULTS + record.id, json.dumps(doc).encode())
        docs = await self.list()
        for old in docs[self.keep :]:
            await self.storage.delete(RESULTS + str(old["id"]))

    async def get(self, scan_id: str) -> dict[str, object] | None:
        """A stored record, or None."""
        if not scan_id.isalnum() or len(scan_id) > 64:
            return None
        rec = await self.storage.get(RESULTS + scan_id)
        return None if rec is None else dict(json.loads(rec.value))

    async def list(self) -> list[dict[str, object]]:
        """Every stored record, newest first."""
        docs = []
        for key in await self.storage.list(RESULTS):
            rec = await self.storage.get(key)
            if rec is not None:
                docs.append(dict(json.loads(rec.value)))
        docs.sort(key=created_of, reverse=True)
        return docs


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
