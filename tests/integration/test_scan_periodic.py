"""Periodic container scans in a real ``vaultside serve`` against a real dockerd: the stored
record is listed and readable, and ``/metrics`` exports its findings by severity.

The planted managed value is generated here, at test time.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from typing import Any


def _get(server: Any, path: str, *, raw: bool = False) -> Any:
    req = urllib.request.Request(
        f"{server.addr}{path}", headers={"Authorization": f"Bearer {server.root_token}"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = resp.read()
    return body.decode() if raw else json.loads(body)


def _send(server: Any, method: str, path: str, body: object) -> None:
    req = urllib.request.Request(
        f"{server.addr}/v1/{path}", method=method, data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {server.root_token}",
                 "Content-Type": "application/json"},
    )  # fmt: skip
    urllib.request.urlopen(req, timeout=30).close()


def test_periodic_scan_of_running_containers(
    docker_engine: Any, busybox_image: str, vaultside_server: Any
) -> None:
    server = vaultside_server(
        DOCKER_HOST=docker_engine.base_url, VAULTSIDE_SCAN__PERIODIC_INTERVAL="1"
    )
    value = "pw-" + secrets.token_urlsafe(18)
    req = urllib.request.Request(
        f"{server.addr}/v1/secrets/app/periodic", method="PUT",
        data=json.dumps({"data": {"password": value}}).encode(),
        headers={"Authorization": f"Bearer {server.root_token}",
                 "Content-Type": "application/json"},
    )  # fmt: skip
    urllib.request.urlopen(req, timeout=30).close()
    auto = "pw-" + secrets.token_urlsafe(18)  # its policy says on_leak: rotate
    _send(server, "PUT", "secrets/app/auto", {"data": {"password": auto}})
    policy = {"every": "1d", "generator": {"kind": "password"}, "target": {"kind": "kv"}}
    _send(server, "PUT", "rotation/policies/app/auto", {**policy, "on_leak": "rotate"})
    c = docker_engine.client.containers.run(
        busybox_image, ["sleep", "300"], environment={"APP_PASSWORD": value, "AUTO_PW": auto},
        name="periodic-leak", network_mode="none", detach=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        found: dict[str, Any] | None = None
        while found is None and time.monotonic() < deadline:
            for summary in _get(server, "/v1/scans")["scans"]:
                if summary["trigger"] != "periodic" or summary["status"] != "done":
                    continue
                doc = _get(server, f"/v1/scans/{summary['id']}")
                if any(f.get("known", {}).get("path") == "app/periodic" for f in doc["findings"]):
                    found = doc
                    break
            else:
                time.sleep(0.5)
        assert found is not None, "no periodic scan found the planted managed secret"
        assert found["kind"] == "containers"
        leak = next(
            f for f in found["findings"] if f.get("known", {}).get("path") == "app/periodic"
        )
        assert leak["location"]["target"] == "periodic-leak"
        assert leak["severity"] == "critical" and leak["known"]["status"] == "current"
        assert value not in json.dumps(found) and auto not in json.dumps(found)
        # the on_leak: rotate secret was rotated by a periodic scan; app/periodic was not
        meta = _get(server, "/v1/secrets/app/auto:metadata")
        assert meta["current_version"] >= 2
        rotated = [
            r
            for s in _get(server, "/v1/scans")["scans"]
            if s["trigger"] == "periodic" and s["status"] == "done"
            for r in _get(server, f"/v1/scans/{s['id']}")["rotations"]
        ]
        assert ("app/auto", "rotated", "policy") in {
            (r["path"], r["outcome"], r["by"]) for r in rotated
        }
        assert _get(server, "/v1/secrets/app/periodic:metadata")["current_version"] == 1
        # the leader exports the latest scan's findings by severity (poll: several workers)
        critical = 0.0
        while critical < 1 and time.monotonic() < deadline:
            for line in _get(server, "/metrics", raw=True).splitlines():
                if line.startswith('vaultside_scan_periodic_findings{severity="critical"}'):
                    critical = float(line.rsplit(" ", 1)[1])
            if critical < 1:
                time.sleep(0.2)
        assert critical >= 1
    finally:
        c.remove(force=True)
