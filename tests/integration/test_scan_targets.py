"""Issue 11, "scans do only what they are asked": ``POST /v1/scans`` with ``kind: containers``
and ``targets`` scans (and with ``rotate_leaked`` rotates) only the named containers, against a
real dockerd and a real server."""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest

from tests.integration.services.vaultside_server import VaultsideServerFactory
from tests.security.support import api, ok

pytestmark = pytest.mark.timeout(240)

POLICY = {"every": "1d", "generator": {"kind": "password", "length": 24}, "target": {"kind": "kv"}}


def _scan(server: Any, body: dict[str, object]) -> dict[str, Any]:
    record = ok(server, "POST", "scans", body)
    deadline = time.monotonic() + 180
    while record["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
        record = ok(server, "GET", f"scans/{record['id']}")
    return dict(record)


def test_container_scan_touches_only_its_targets(
    docker_engine: Any, busybox_image: str, vaultside_server: VaultsideServerFactory
) -> None:
    server = vaultside_server(DOCKER_HOST=docker_engine.base_url)
    suffix = secrets.token_hex(4)
    values = {name: "pw-" + secrets.token_urlsafe(18) for name in ("a", "b")}
    containers = []
    try:
        for name, value in values.items():
            ok(server, "PUT", f"secrets/scan/{name}", {"data": {"password": value}})
            ok(server, "PUT", f"rotation/policies/scan/{name}", POLICY)
            containers.append(
                docker_engine.client.containers.run(
                    busybox_image,
                    ["sleep", "300"],
                    detach=True,
                    network_mode="none",
                    name=f"vs-sec-{name}-{suffix}",
                    environment={"DB_PASSWORD": value},
                )
            )
        record = _scan(
            server, {"kind": "containers", "targets": [f"vs-sec-a-{suffix}"], "rotate_leaked": True}
        )
        assert record["status"] == "done", record
        where = {f["location"]["target"] for f in record["findings"]}
        assert where == {f"vs-sec-a-{suffix}"}, where
        assert {r["path"]: r["outcome"] for r in record["rotations"]} == {"scan/a": "rotated"}
        assert ok(server, "GET", "secrets/scan/b")["metadata"]["version"] == 1
        assert ok(server, "GET", "secrets/scan/a")["metadata"]["version"] == 2
        # An unknown target is an error, not a scan of everything.
        record = _scan(server, {"kind": "containers", "targets": [f"vs-sec-none-{suffix}"]})
        assert record["status"] == "failed" and "no container" in (record["error"] or ""), record
        assert api(server, "GET", "secrets/scan/b")[1]["metadata"]["version"] == 1
    finally:
        for c in containers:
            c.remove(force=True)
