"""``vaultside serve --dev`` as a real subprocess: a full round trip over HTTP."""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .services.vaultside_server import VaultsideServer, VaultsideServerFactory


def _call(
    server: VaultsideServer, method: str, path: str, body: object = None, **headers: str
) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{server.addr}{path}", data=data, method=method)
    req.add_header("Authorization", f"Bearer {server.root_token}")
    for k, v in headers.items():
        req.add_header(k.replace("_", "-"), v)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, dict(resp.headers), json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, dict(exc.headers), json.loads(raw) if raw else None


def test_dev_server_round_trip(vaultside_server: VaultsideServerFactory) -> None:
    server = vaultside_server()
    value = "it-" + secrets.token_urlsafe(16)
    status, headers, body = _call(server, "PUT", "/v1/secrets/app/db", {"data": {"pw": value}})
    assert status == 200, body
    assert headers["X-Request-Id"]
    status, headers, body = _call(server, "GET", "/v1/secrets/app/db")
    assert status == 200 and body["data"] == {"pw": value}
    etag = headers["ETag"]
    status, _, _ = _call(server, "GET", "/v1/secrets/app/db", If_None_Match=etag)
    assert status == 304
    status, _, body = _call(server, "GET", "/v1/secrets/app?list=true")
    assert body == {"keys": ["db"]}
    status, _, _ = _call(server, "DELETE", "/v1/secrets/app/db")
    assert status == 204
    status, _, body = _call(server, "GET", "/v1/secrets/app/db")
    assert status == 404 and body["request_id"]

    # Printed exactly once, and nothing secret in the data dir or the output.
    output = server.output()
    assert output.count(server.root_token) == 1
    assert value not in output
    for path in server.data_dir.rglob("*"):
        if path.is_file():
            assert value.encode() not in path.read_bytes(), path
            assert server.root_token.encode() not in path.read_bytes(), path


def test_restart_keeps_data_and_prints_a_new_token(
    vaultside_server: VaultsideServerFactory,
) -> None:
    server = vaultside_server()
    value = "it-" + secrets.token_urlsafe(16)
    assert _call(server, "PUT", "/v1/secrets/keep/me", {"data": {"v": value}})[0] == 200
    old = server.root_token
    server.restart()
    assert server.root_token != old
    status, _, body = _call(server, "GET", "/v1/secrets/keep/me")
    assert status == 200 and body["data"] == {"v": value}


def test_two_workers_share_the_port_and_the_data(vaultside_server: VaultsideServerFactory) -> None:
    server = vaultside_server(VAULTSIDE_SERVER__WORKERS="2")
    values = {f"w/{i}": "it-" + secrets.token_urlsafe(8) for i in range(20)}
    for path, value in values.items():
        assert _call(server, "PUT", f"/v1/secrets/{path}", {"data": {"v": value}})[0] == 200
    for path, value in values.items():
        status, _, body = _call(server, "GET", f"/v1/secrets/{path}")
        assert status == 200 and body["data"] == {"v": value}
    status, _, body = _call(server, "GET", "/v1/sys/health")
    assert status == 200
    text = urllib.request.urlopen(f"{server.addr}/metrics", timeout=10).read().decode()
    assert "vaultside_http_requests_total" in text


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(p) for p in text]
    return found


def test_a_killed_worker_is_replaced(vaultside_server: VaultsideServerFactory) -> None:
    server = vaultside_server(VAULTSIDE_SERVER__WORKERS="2")
    assert server.proc is not None
    workers = _children(server.proc.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = _children(server.proc.pid)
        if len(now) == 2 and workers[0] not in now:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"worker not replaced: {now}")
    for _ in range(20):
        assert _call(server, "GET", "/v1/sys/health")[0] == 200
