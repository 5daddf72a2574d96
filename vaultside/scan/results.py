"""Server-side scan records: one scan's request, state and redacted findings (``ScanRecord``),
where finished ones persist (``ScanResults``, under ``results/<id>`` of the scan view,
the newest ``keep`` of them, so any server or worker answers for them) and the periodic
scan's metrics (``ScanMetrics``).

The scan service and the periodic scanner both use these; neither imports the other's module
for them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge

from vaultside.scan.base import Finding, Severity
from vaultside.scan.leaks import RotationOutcome
from vaultside.scan.reporters.json import finding_json
from vaultside.storage.base import StorageBackend

# In the scan service's storage view (wiring: ``scan/``).
RESULTS = "results/"


def created_of(doc: dict[str, object]) -> float:
    """A record document's creation time (0 if missing), for newest-first sorting."""
    created = doc.get("created")
    return float(created) if isinstance(created, int | float) else 0.0


@dataclass
class ScanRecord:
    """One server-side scan: its request, state and (redacted) findings."""

    id: str
    kind: str
    targets: list[str]
    created: float
    status: str = "running"  # running / done / failed
    finished: float | None = None
    error: str | None = None
    findings: list[Finding] = field(default_factory=list)
    suppressed: int = 0
    known_values: int = 0
    rotate_leaked: bool = False
    rotations: list[RotationOutcome] = field(default_factory=list)
    trigger: str = "api"  # api / periodic

    def to_json(self) -> dict[str, object]:
        """The API shape (values redacted, never revealed)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "trigger": self.trigger,
            "targets": self.targets,
            "status": self.status,
            "created": self.created,
            "finished": self.finished,
            "error": self.error,
            "known_values": self.known_values,
            "suppressed": self.suppressed,
            "findings": [finding_json(f) for f in self.findings],
            "rotate_leaked": self.rotate_leaked,
            "rotations": [r.to_json() for r in self.rotations],
        }


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
