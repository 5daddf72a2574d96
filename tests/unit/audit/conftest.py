"""Audit test helpers: events carrying generated (never literal) sensitive values."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from vaultside.audit.events import AuditEvent
from vaultside.audit.hmac import AuditHasher


def make_event(i: int = 0, **sensitive: str) -> AuditEvent:
    return AuditEvent(
        time=1_700_000_000.0 + i,
        request_id=f"req-{i}",
        accessor="A" * 24,
        policies=["app", "default"],
        operation="GET",
        path=f"/v1/secrets/app/db{i}",
        status=200,
        client="10.0.0.1",
        latency_ms=1.25,
        extra={"route": "/v1/secrets/{path}"},
        sensitive=dict(sensitive),
    )


def write_from_two_processes(path: Path, rounds: int, sink_options: str = "") -> None:
    """Two processes ``a`` and ``b`` each write ``rounds`` x 3 concurrent records to one
    ``FileSink(path, <sink_options>)``; both must exit 0."""
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from vaultside.audit.sinks import FileSink\n"
        "async def main():\n"
        f"    s = FileSink(Path(sys.argv[1]){sink_options})\n"
        f"    for i in range({rounds}):\n"
        "        await asyncio.gather(*(s.write({'p': sys.argv[2], 'i': i, 'j': j})"
        " for j in range(3)))\n"
        "    await s.close()\n"
        "asyncio.run(main())\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), name]) for name in "ab"]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]


@pytest.fixture
def hasher() -> AuditHasher:
    return AuditHasher(secrets.token_bytes(32))


@pytest.fixture
def planted() -> str:
    """A fake credential generated at test time."""
    return "vs." + secrets.token_urlsafe(32)
