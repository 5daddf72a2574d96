"""The plugin's admission audit: server audit records, hash-chained and keyed, verifiable."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from vaultside.audit.chain import GENESIS, canonical, chain
from vaultside.audit.hmac import load_key
from vaultside.audit.verify import verify_chain
from vaultside.cli.main import cli
from vaultside.clock import FakeClock
from vaultside.errors import UpstreamUnavailableError
from vaultside.inject.audit import InjectAuditLog

SERVER_FIELDS = {
    "time", "request_id", "accessor", "policies", "operation", "path", "status", "client",
    "latency_ms", "error", "extra",
}  # fmt: skip
LINK_FIELDS = {"prev", "seq", "hash", "mac"}


async def _decisions(path: Path, n: int = 3) -> InjectAuditLog:
    audit = InjectAuditLog(path, clock=FakeClock())
    for i in range(n):
        await audit.record(
            operation="inject.admit",
            path=f"inject/volumes/v{i}",
            status=200 if i % 2 == 0 else 403,
            client=f"container:{i:012d}",
            error=None if i % 2 == 0 else "admission denied: privileged",
            extra={"privileged": "deny:ok", "role": "web"},
        )
    await audit.close()
    return audit


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def _rechain_without_key(path: Path, records: list[dict[str, Any]], *, keep_macs: bool) -> None:
    """What someone who can write the log but not read the chain key can do after an edit:
    new hashes, and the old MACs either dropped or kept."""
    prev, out = GENESIS, b""
    for rec in records:
        body = {k: v for k, v in rec.items() if k not in LINK_FIELDS}
        line, prev, _ = chain(body, prev, rec["seq"])
        if keep_macs:
            line = canonical({**json.loads(line), "mac": rec["mac"]}) + b"\n"
        out += line
    path.write_bytes(out)


async def test_records_have_the_server_shape_and_are_chained_and_keyed(tmp_path: Path) -> None:
    path = tmp_path / "inject-audit.log"
    audit = await _decisions(path)
    records = _records(path)
    assert [set(r) for r in records] == [SERVER_FIELDS | LINK_FIELDS] * 3
    assert [r["seq"] for r in records] == [1, 2, 3] and records[0]["prev"] == GENESIS
    assert all(len(r["mac"]) == 64 for r in records)
    assert records[0]["time"] == "2023-11-14T22:13:20.000000Z"  # the server's RFC3339
    assert records[1]["status"] == 403 and records[1]["extra"]["role"] == "web"
    for f in (path, audit.hmac_key_file, audit.chain_key_file):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    result = verify_chain(path, key=load_key(audit.chain_key_file))
    assert result.ok and result.keyed and result.records == 3, result.problems


async def test_the_chain_continues_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "inject-audit.log"
    audit = await _decisions(path, n=2)
    await _decisions(path, n=2)  # a new plugin process: same file, same keys
    assert [r["seq"] for r in _records(path)] == [1, 2, 3, 4]
    assert verify_chain(path, key=load_key(audit.chain_key_file)).ok


async def test_an_edit_re_chained_without_the_key_is_found(tmp_path: Path) -> None:
    path = tmp_path / "inject-audit.log"
    audit = await _decisions(path)
    records = _records(path)
    records[1]["status"] = 200  # hide a denial
    _rechain_without_key(path, records, keep_macs=True)
    assert verify_chain(path).ok  # the structure alone cannot tell
    result = verify_chain(path, key=load_key(audit.chain_key_file), every_keyed=True)
    assert not result.ok and result.problems[0].startswith("line 2: MAC does not match")
    _rechain_without_key(path, records, keep_macs=False)  # or dropping every MAC
    assert verify_chain(path).ok
    result = verify_chain(path, key=load_key(audit.chain_key_file), every_keyed=True)
    assert not result.ok and result.problems[0].startswith("line 1: no MAC"), result.problems


async def test_audit_verify_cli_checks_the_plugin_log_with_its_key_file(tmp_path: Path) -> None:
    path = tmp_path / "inject-audit.log"
    audit = await _decisions(path)
    runner = CliRunner()
    args = ["audit", "verify", str(path), "--key-file", str(audit.chain_key_file)]
    ok = runner.invoke(cli, args)
    assert ok.exit_code == 0 and "3 records" in ok.output and "(keyed)" in ok.output, ok.output
    records = _records(path)
    records[0]["client"] = "container:someone-else"
    _rechain_without_key(path, records, keep_macs=False)
    broken = runner.invoke(cli, args)
    assert broken.exit_code == 1 and "no MAC" in broken.output, broken.output
    both = runner.invoke(cli, [*args, "--data-dir", str(tmp_path)])
    assert both.exit_code == 2 and "not both" in both.output


async def test_an_unwritable_log_fails_closed(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    audit = InjectAuditLog(blocker / "inject-audit.log", clock=FakeClock())
    with pytest.raises(UpstreamUnavailableError, match="audit log unavailable"):
        await audit.record(
            operation="inject.admit", path="inject/volumes/v", status=200, client="c"
        )
