"""Leaked managed secrets get rotated: a real ``vaultside serve`` scans a real dockerd image
with ``rotate_leaked``, and ``vaultside scan --rotate-leaked`` asks it to rotate-now.

Every planted value is generated here, at test time.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.integration.stack import api

POLICY = {"every": "1d", "generator": {"kind": "password", "length": 24}, "target": {"kind": "kv"}}


def _scan(server: Any, body: dict[str, object], token: str) -> dict[str, Any]:
    record = api(server, "POST", "scans", body, token)
    deadline = time.monotonic() + 180
    while record["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
        record = api(server, "GET", f"scans/{record['id']}", token=token)
    assert record["status"] == "done", record
    return record


def _known(record: dict[str, Any]) -> dict[str, tuple[int, str]]:
    return {
        f["known"]["path"]: (f["known"]["version"], f["known"]["status"])
        for f in record["findings"]
        if f.get("known")
    }


def test_scan_rotates_leaked_current_secrets(
    docker_engine: Any, busybox_image: str, vaultside_server: Any, tmp_path: Path
) -> None:
    server = vaultside_server(DOCKER_HOST=docker_engine.base_url)
    vals = {p: "pw-" + secrets.token_urlsafe(18) for p in ("app/boot", "app/cli", "app/bare")}
    for path, value in vals.items():
        api(server, "PUT", f"secrets/{path}", {"data": {"password": value}})
    for path in ("app/boot", "app/cli"):
        api(server, "PUT", f"rotation/policies/{path}", POLICY)
    (tmp_path / "creds.txt").write_text("".join(f"{p}={v}\n" for p, v in vals.items()))
    (tmp_path / "Dockerfile").write_text(f"FROM {busybox_image}\nCOPY creds.txt /opt/\n")
    tag = "vaultside-test/leaked-managed:1"
    docker_engine.client.images.build(path=str(tmp_path), tag=tag, rm=True, forcerm=True)

    # a scanner allowed to rotate app/boot only (and app/bare, which has no policy)
    rules = [
        {"path": "scans", "capabilities": ["scan"]},
        {"path": "rotation/app/boot", "capabilities": ["rotate"]},
        {"path": "rotation/app/bare", "capabilities": ["rotate"]},
    ]
    api(server, "PUT", "sys/policies/leak-scanner", {"rules": rules})
    token = api(server, "POST", "auth/token/create", {"policies": ["leak-scanner"]})["auth"][
        "token"
    ]
    record = _scan(server, {"kind": "image", "targets": [tag], "rotate_leaked": True}, token)
    assert record["rotate_leaked"] is True
    rotations = record["rotations"]
    got = {r["path"]: (r["outcome"], r["leaked_version"], r["version"]) for r in rotations}
    assert got == {
        "app/boot": ("rotated", 1, 2),
        "app/bare": ("no-policy", 1, None),
        "app/cli": ("denied", 1, None),
    }
    assert not any(v in json.dumps(record) for v in vals.values())
    assert api(server, "GET", "secrets/app/boot:metadata")["current_version"] == 2
    assert api(server, "GET", "secrets/app/cli:metadata")["current_version"] == 1
    assert api(server, "GET", "secrets/app/bare:metadata")["current_version"] == 1

    # the old value is now "previous", and a plain scan changes nothing
    again = _scan(server, {"kind": "image", "targets": [tag]}, token)
    assert _known(again)["app/boot"] == (1, "previous")
    assert again["rotations"] == [] and again["rotate_leaked"] is False

    # the CLI: local scan, known index and rotate-now from the server (root may rotate app/cli)
    env = {**docker_engine.env, "VAULTSIDE_ADDR": server.addr, "VAULTSIDE_TOKEN": server.root_token}
    res = subprocess.run(
        [sys.executable, "-m", "vaultside", "scan", "image", tag, "--rotate-leaked",
         "--format", "json"],
        env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert res.returncode == 1, res.stderr  # findings remain in the image
    assert "rotated app/cli: leaked v1, now v2" in res.stderr
    assert "not rotated app/bare (v1): leaked, no rotation policy" in res.stderr
    assert "app/boot" not in res.stderr  # its leaked version is no longer current
    assert not any(v in res.stdout + res.stderr for v in vals.values())
    assert api(server, "GET", "secrets/app/cli:metadata")["current_version"] == 2

    # audited: one scan.rotate_leaked record per secret, naming the outcome, never the value
    audit = (Path(server.data_dir) / "audit.log").read_text()
    leak = [json.loads(x) for x in audit.splitlines() if '"scan.rotate_leaked"' in x]
    assert {(r["path"], r["extra"]["outcome"]) for r in leak} == {
        ("rotation/app/boot", "rotated"),
        ("rotation/app/bare", "no-policy"),
        ("rotation/app/cli", "denied"),
    }
    assert not any(v in audit for v in vals.values())
