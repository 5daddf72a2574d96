"""Finding 7 (issue 11): the audit chain had no key, replayed against a real server.

Editing a record and recomputing SHA-256 over the rest passed ``vaultside audit verify``;
deleting the file made the server start a new chain from genesis; a truncated tail could not
be detected. Records are now linked with an HMAC under a key held in the barrier, and the
latest link is anchored in storage: ``audit verify --data-dir`` detects all four.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .flood import audit_records, call, vaultside

_GENESIS = "0" * 64


def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _rechain(records: list[dict[str, Any]], prev: str) -> list[dict[str, Any]]:
    """What an attacker without the key can do: fix every SHA-256 link after an edit (the
    hash covers the record without ``hash`` and ``mac``; the MAC cannot be recomputed)."""
    out = []
    for rec in records:
        body = {k: v for k, v in rec.items() if k not in ("hash", "mac")}
        body["prev"] = prev
        prev = hashlib.sha256(_canonical(body)).hexdigest()
        out.append({**rec, **body, "hash": prev})
    return out


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(_canonical(r) + b"\n" for r in records))


def _server_with_records(vaultside_server: Any) -> Any:
    server = vaultside_server()
    for i in range(12):
        assert call(server.addr, "GET", f"/v1/secrets/app/c{i}", server.root_token)[0] == 404
    server.stop()
    return server


def _verify(server: Any, *, keyed: bool = True) -> tuple[int, str]:
    log = str(server.data_dir / "audit.log")
    args = ["audit", "verify", "--data-dir", str(server.data_dir), log] if keyed else [
        "audit", "verify", log,
    ]  # fmt: skip
    result = vaultside(*args)
    return result.returncode, result.stdout + result.stderr


def test_an_edited_record_with_recomputed_hashes_fails_verify(vaultside_server: Any) -> None:
    server = _server_with_records(vaultside_server)
    assert _verify(server) == (0, _verify(server)[1]), _verify(server)[1]
    log = server.data_dir / "audit.log"
    records = audit_records(log)
    k = len(records) // 2
    records[k]["path"] = "/v1/secrets/app/innocent"
    records[k]["status"] = 200
    _write(log, records[:k] + _rechain(records[k:], records[k - 1]["hash"]))

    code, out = _verify(server)
    assert code == 1, out
    assert f"line {k + 1}" in out, out


def test_a_truncated_tail_fails_verify(vaultside_server: Any) -> None:
    server = _server_with_records(vaultside_server)
    log = server.data_dir / "audit.log"
    records = audit_records(log)
    _write(log, records[:-3])

    code, out = _verify(server)
    assert code == 1, out
    assert "truncated" in out or "missing" in out, out
    # Without the key only the structure can be checked, and it is intact.
    assert _verify(server, keyed=False)[0] == 0


def test_a_deleted_file_and_a_restarted_chain_fail_verify(vaultside_server: Any) -> None:
    server = _server_with_records(vaultside_server)
    log = server.data_dir / "audit.log"
    log.unlink()
    server.start()  # the server must not silently begin a fresh chain
    assert call(server.addr, "GET", "/v1/secrets/app/after", server.root_token)[0] == 404
    server.stop()

    code, out = _verify(server)
    assert code == 1, out
    assert "missing" in out or "restart" in out, out


def test_a_forged_chain_from_genesis_fails_verify(vaultside_server: Any) -> None:
    server = _server_with_records(vaultside_server)
    log = server.data_dir / "audit.log"
    records = audit_records(log)[:4]
    _write(log, _rechain(records, _GENESIS))
    assert _verify(server, keyed=False)[0] == 0  # structurally a fine chain

    code, out = _verify(server)
    assert code == 1, out


def test_verify_without_the_key_still_checks_structure(vaultside_server: Any) -> None:
    server = _server_with_records(vaultside_server)
    log = server.data_dir / "audit.log"
    records = audit_records(log)
    records[3]["status"] = 200  # edited, hash not recomputed
    _write(log, records)
    code, out = _verify(server, keyed=False)
    assert code == 1 and "line 4" in out, out
