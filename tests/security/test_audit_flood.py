"""Finding 6 (issue 11): anonymous floods, replayed against a real server.

A 10 s ``wrk`` flood with no token grew ``audit.log`` by 38 MB: unauthenticated requests were
neither throttled nor summarised, and a full audit disk makes the server refuse everything.
Now repeated denials from one client become one record per client per interval with a count
(every request still accounted for), and the file rotates by size with the chain continuing.
"""

from __future__ import annotations

import asyncio
import json
import time

from .flood import audit_records, call, low_privilege_token, parallel_get, vaultside

_FLOOD = 3000


async def test_unauthenticated_flood_is_summarised_and_accounted_for(
    vaultside_server,  # type: ignore[no-untyped-def]
) -> None:
    server = vaultside_server(VAULTSIDE_AUDIT__SUMMARY_INTERVAL="1")
    valid = low_privilege_token(server.addr, server.root_token)
    log = server.data_dir / "audit.log"
    before = log.stat().st_size

    answers = await parallel_get(f"{server.addr}/v1/secrets/app/db", [None] * _FLOOD, limit=64)
    grown = log.stat().st_size - before
    assert all(a.status == 403 for a in answers), sorted({a.status for a in answers})
    # A valid token from the same address is served at once after the flood.
    started = time.monotonic()
    assert call(server.addr, "GET", "/v1/secrets/app/db", valid)[0] == 404
    assert time.monotonic() - started < 0.5

    assert grown < 30_000, f"{_FLOOD} unauthenticated requests grew audit.log by {grown} bytes"

    await asyncio.sleep(2.5)  # the 1 s summary interval has closed
    records = audit_records(log)
    single = [
        r
        for r in records
        if r["path"] == "/v1/secrets/app/db"
        and r["accessor"] is None
        and r["status"] == 403
        and r["operation"] != "summary"
    ]
    summaries = [r for r in records if r["operation"] == "summary"]
    assert summaries, "no summary record for the flood"
    counted = sum(int(r["extra"]["count"]) for r in summaries if r["client"] == "127.0.0.1")
    assert len(single) + counted == _FLOOD, (len(single), counted)
    assert all(r["extra"]["kind"] == "denials" for r in summaries)


def test_audit_file_rotates_by_size_and_the_chain_continues(
    vaultside_server,  # type: ignore[no-untyped-def]
) -> None:
    # Two worker processes share the file: rotation happens under the lock, one chain.
    server = vaultside_server(
        VAULTSIDE_AUDIT__MAX_FILE_BYTES="16384", VAULTSIDE_SERVER__WORKERS="2"
    )
    for i in range(120):
        assert call(server.addr, "GET", f"/v1/secrets/app/r{i}", server.root_token)[0] == 404
    server.stop()

    log = server.data_dir / "audit.log"
    rotated = sorted(server.data_dir.glob("audit.log.*"))
    assert len(rotated) >= 3, [p.name for p in rotated]
    assert all(p.stat().st_size < 16384 + 4096 for p in rotated)
    files = [*rotated, log] if log.exists() else rotated
    records = [r for p in files for r in audit_records(p)]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    for earlier, later in zip(rotated, files[1:], strict=False):
        assert audit_records(later)[0]["prev"] == audit_records(earlier)[-1]["hash"]

    result = vaultside("audit", "verify", "--json", str(log))
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["records"] == len(records)
    keyed = vaultside("audit", "verify", "--json", "--data-dir", str(server.data_dir), str(log))
    assert keyed.returncode == 0, keyed.stdout + keyed.stderr
    assert json.loads(keyed.stdout)["keyed"] is True
