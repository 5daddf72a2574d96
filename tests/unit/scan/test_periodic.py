"""Periodic container scans: leader lease, stored results any service can read, metrics, loop.

Real barrier-backed storage on a FakeClock; the Docker engine is a real client pointed at a
socket that does not exist (unit tests have no engine), so every scan here ends ``failed``
the way it would against a dead engine. Scans that find things run in the integration tests.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from vaultside.clock import FakeClock
from vaultside.crypto.barrier import Barrier
from vaultside.errors import NotFoundError
from vaultside.scan.base import Finding, Location, Secret, Severity
from vaultside.scan.periodic import PeriodicScanner
from vaultside.scan.results import ScanMetrics, ScanRecord, ScanResults
from vaultside.scan.service import ScanService
from vaultside.scan.sources.container import docker_client
from vaultside.wiring.keyspace import view
from vaultside.wiring.scan import SERVER_SCAN_SOURCES


def _scanner(
    barrier: Barrier, clock: FakeClock, tmp_path: Path, holder: str, keep: int = 50
) -> PeriodicScanner:
    results = ScanResults(view(barrier, "scan"), keep=keep)  # as wiring builds it
    metrics = ScanMetrics()
    scans = ScanService(
        values=None,
        docker_factory=lambda: docker_client(f"unix://{tmp_path}/no-engine.sock"),
        clock=clock,
        sources=SERVER_SCAN_SOURCES,
        results=results,
        metrics=metrics,
    )
    return PeriodicScanner(
        scans,
        view(barrier, "scan"),
        results,
        clock=clock,
        interval=60.0,
        metrics=metrics,
        holder=holder,
    )


def _value(metric: object, **labels: str) -> float:
    for family in metric.collect():  # type: ignore[attr-defined]
        for sample in family.samples:
            if sample.labels == labels and not sample.name.endswith("_created"):
                return float(sample.value)
    raise AssertionError(f"no sample {labels}")


async def test_only_the_leader_scans_and_any_service_reads_the_result(
    barrier: Barrier, tmp_path: Path
) -> None:
    clock = FakeClock()
    a = _scanner(barrier, clock, tmp_path, "a")
    b = _scanner(barrier, clock, tmp_path, "b")
    record = await a.tick()
    assert record is not None and record.trigger == "periodic" and record.kind == "containers"
    assert record.status == "failed" and "Docker engine" in (record.error or "")
    assert await b.tick() is None  # a holds the lease
    assert _value(a.metrics.leader) == 1 and _value(b.metrics.leader) == 0
    assert _value(a.metrics.runs, result="failed") == 1
    # b's service never ran that scan, yet finds it (stored through the barrier)
    with pytest.raises(NotFoundError):
        b.scans.get(record.id)
    doc = await b.scans.find(record.id)
    assert doc["id"] == record.id and doc["trigger"] == "periodic" and doc["status"] == "failed"
    [summary] = await b.scans.summaries()
    assert summary["id"] == record.id and summary["finding_count"] == 0
    assert "findings" not in summary
    with pytest.raises(NotFoundError):
        await b.scans.find("0123456789abcdef")
    # once a's lease is gone (released, or expired: storage leases run on wall time), b leads
    await barrier.unlock("scan/periodic", "a")
    assert await b.tick() is not None and b.leader
    assert await a.tick() is None and not a.leader


async def test_results_keep_only_the_newest(barrier: Barrier, tmp_path: Path) -> None:
    clock = FakeClock()
    a = _scanner(barrier, clock, tmp_path, "a", keep=2)
    ids = []
    for _ in range(3):
        record = await a.tick()
        assert record is not None
        ids.append(record.id)
        clock._now += 1.0
    assert [d["id"] for d in await a.results.list()] == [ids[2], ids[1]]


async def test_loop_scans_every_interval_and_releases_the_lease(
    barrier: Barrier, tmp_path: Path
) -> None:
    clock = FakeClock()
    a = _scanner(barrier, clock, tmp_path, "a")
    await a.start()
    await asyncio.sleep(0)
    assert await a.results.list() == []  # the first scan waits one interval
    await clock.advance(60.0)

    async def stored() -> None:  # the scan's engine call runs in a worker thread
        while not await a.results.list():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(stored(), timeout=20)
    assert len(await a.results.list()) == 1
    await a.close()
    assert not a.leader
    assert await barrier.try_lock("scan/periodic", "other", 60.0)  # released on close


def test_metrics_publish_findings_by_severity() -> None:
    loc = Location("container", "web", "config/Env")
    record = ScanRecord("abc", "containers", [], 0.0, status="done")
    record.findings = [
        Finding("r1", "d", Severity.CRITICAL, loc, secret=Secret("x" * 20)),
        Finding("r2", "d", Severity.HIGH, loc),
        Finding("r3", "d", Severity.HIGH, loc),
    ]
    metrics = ScanMetrics()
    metrics.observe(record)
    assert _value(metrics.findings, severity="critical") == 1
    assert _value(metrics.findings, severity="high") == 2
    assert _value(metrics.findings, severity="low") == 0
    assert _value(metrics.runs, result="done") == 1
    record.findings = []
    metrics.observe(record)
    assert _value(metrics.findings, severity="high") == 0


@pytest.mark.parametrize("interval", [0.0, 30.0])
def test_wiring_adds_the_periodic_scanner_only_when_configured(
    tmp_path: Path, interval: float
) -> None:
    from vaultside.config.settings import Settings
    from vaultside.wiring.server import build_services

    settings = Settings(
        data_dir=tmp_path,
        audit={"stdout": True},
        scan={"periodic_interval": interval},
        rotation={"scheduler": False},
    )
    services = build_services(settings, clock=FakeClock())
    periodic = [c for c in services.components if isinstance(c, PeriodicScanner)]
    assert services.scans is not None
    assert [p.interval for p in periodic] == ([30.0] if interval else [])
    assert (services.scans.metrics is not None) == bool(interval)
