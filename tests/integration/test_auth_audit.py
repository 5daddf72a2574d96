"""Tokens, policies and the audit log through a real ``vaultside serve`` with two workers."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from typing import Any

from .services.vaultside_server import VaultsideServer, VaultsideServerFactory
from .services.wire import request


def _call(
    server: VaultsideServer, method: str, path: str, body: object = None, token: str = ""
) -> tuple[int, Any]:
    reply = request(
        server.addr, method, path, token=token or server.root_token, body=body, timeout=10
    )
    return reply.status, reply.json_or(None)


def _vaultside(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vaultside", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_tokens_policies_and_audit_across_two_workers(
    vaultside_server: VaultsideServerFactory,
) -> None:
    server = vaultside_server(VAULTSIDE_SERVER__WORKERS="2")
    value = "it-" + secrets.token_urlsafe(16)
    assert _call(server, "PUT", "/v1/secrets/app/db", {"data": {"pw": value}})[0] == 200
    rules = {"rules": [{"path": "secrets/app/*", "capabilities": ["read"]}]}
    assert _call(server, "PUT", "/v1/sys/policies/app-read", rules)[0] in (200, 204)

    status, body = _call(
        server, "POST", "/v1/auth/token/create", {"policies": ["app-read"], "ttl": 600}
    )
    assert status == 200, body
    token, accessor = body["auth"]["token"], body["auth"]["accessor"]
    assert set(body["auth"]["policies"]) == {"app-read", "default"}

    # Both workers (connections are spread by the kernel) accept it and enforce its policy.
    for _ in range(10):
        status, body = _call(server, "GET", "/v1/secrets/app/db", token=token)
        assert status == 200 and body["data"] == {"pw": value}
        assert _call(server, "PUT", "/v1/secrets/app/db", {"data": {"x": "y"}}, token)[0] == 403
        assert _call(server, "GET", "/v1/auth/token/lookup-self", token=token)[0] == 200

    # A child cannot escalate beyond its parent's policies.
    status, _ = _call(server, "POST", "/v1/auth/token/create", {"policies": ["root"]}, token)
    assert status == 403

    # Revoked on one worker, refused by every worker within 1 s.
    assert _call(server, "POST", "/v1/auth/token/revoke", {"accessor": accessor})[0] == 204
    time.sleep(1.2)
    for _ in range(10):
        assert _call(server, "GET", "/v1/secrets/app/db", token=token)[0] == 403

    # The shared audit file is one intact chain with no token or value in it.
    audit_log = server.data_dir / "audit.log"
    data = audit_log.read_bytes()
    for secret in (token, server.root_token, value):
        assert secret.encode() not in data
    assert accessor.encode() in data
    records = [json.loads(line) for line in data.splitlines()]
    # The revoked token's repeated 403s are summarised (one record per worker + a count).
    assert len(records) >= 30
    verify = _vaultside("audit", "verify", "--json", str(audit_log))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout)["records"] == len(records)

    # After a restart (new processes) the chain continues.
    server.restart()
    assert _call(server, "GET", "/v1/secrets/app/db")[0] == 200
    assert _vaultside("audit", "verify", str(audit_log)).returncode == 0

    # Tampering is reported with line numbers and exit code 1.
    lines = audit_log.read_bytes().splitlines()
    del lines[3]
    audit_log.write_bytes(b"\n".join(lines) + b"\n")
    broken = _vaultside("audit", "verify", str(audit_log))
    assert broken.returncode == 1
    assert "line 4" in broken.stdout + broken.stderr
