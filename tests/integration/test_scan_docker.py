"""Leak scanner against a real Docker engine: images built with planted secrets, containers,
decoys, server-side scans with known values, and unreadable inputs.

Every planted credential is generated here, at test time.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.services.wire import request
from tests.integration.stack import api
from tests.unit.scan.credgen import AN, HEX, github_token, rnd
from tests.unit.scan.decoys import decoy_files

RNG = random.Random(2026)
P = {
    "env": "glpat-" + rnd(RNG, AN, 20),
    "label": "sk_live_" + rnd(RNG, AN, 30),
    "build_arg": github_token(RNG),
    "file": "AKIA" + rnd(RNG, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16),
    "deleted": "npm_" + rnd(RNG, AN, 36),
    "nested": "rubygems_" + rnd(RNG, HEX, 48),
    "jar": "dckr_pat_" + rnd(RNG, AN, 27),
}
MANAGED = "correct horse " + rnd(RNG, AN, 12) + " battery"  # no rule matches this


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tgz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue())


@pytest.fixture(scope="module")
def leaky_image(docker_engine: Any, busybox_image: str, tmp_path_factory: Any) -> str:
    ctx: Path = tmp_path_factory.mktemp("leaky")
    (ctx / "config.yml").write_text(f"aws_access_key_id: {P['file']}\n")
    (ctx / "secrets.txt").write_text(f"x\nNPM_TOKEN={P['deleted']}\n")
    (ctx / "bundle.tgz").write_bytes(_tgz({"conf/app.ini": f"key={P['nested']}\n".encode()}))
    (ctx / "app.jar").write_bytes(
        _zip({"BOOT-INF/application.properties": f"hub.token={P['jar']}\n".encode()})
    )
    (ctx / "managed.txt").write_text(f"boot password is {MANAGED}\n")
    decoys = ctx / "decoys"
    for rel, data in decoy_files(random.Random(5)).items():
        (decoys / rel).parent.mkdir(parents=True, exist_ok=True)
        (decoys / rel).write_bytes(data)
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_image}\n"
        f"ENV GITLAB_TOKEN={P['env']}\n"
        f'LABEL com.example.stripe="{P["label"]}"\n'
        "ARG GH_TOKEN\n"
        'RUN echo "cloning with $GH_TOKEN" > /dev/null\n'
        "COPY config.yml /etc/app/config.yml\n"
        "COPY secrets.txt /tmp/secrets.txt\n"
        "RUN rm /tmp/secrets.txt\n"
        "COPY bundle.tgz app.jar managed.txt /opt/\n"
        "COPY decoys/ /srv/\n"
    )
    tag = "vaultside-test/leaky:1"
    docker_engine.client.images.build(
        path=str(ctx), tag=tag, buildargs={"GH_TOKEN": P["build_arg"]}, rm=True, forcerm=True
    )
    return tag


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vaultside", "scan", *args],
        env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


def _by_value(out: str) -> dict[str, dict[str, Any]]:
    return {f["value"]: f for f in json.loads(out)["findings"] if "value" in f}


def _paths(out: str, value: str) -> set[str]:
    return {f["location"]["path"] for f in json.loads(out)["findings"] if f.get("value") == value}


def test_image_scan_finds_every_plant_with_attribution(
    docker_engine: Any, leaky_image: str
) -> None:
    res = _cli(["image", leaky_image, "--format", "json", "--reveal"], docker_engine.env)
    assert res.returncode == 1, res.stderr
    found = _by_value(res.stdout)
    missing = [k for k, v in P.items() if v not in found]
    assert not missing, f"missing {missing}: {res.stdout[:2000]}"
    loc = {k: found[v]["location"] for k, v in P.items()}
    # ENV and LABEL values show up in the config and in the instruction's history entry
    assert _paths(res.stdout, P["env"]) == {"config/Env", "config/history"}
    assert _paths(res.stdout, P["label"]) == {"config/Labels", "config/history"}
    assert loc["build_arg"]["path"] == "config/history"
    assert "RUN" in loc["build_arg"]["created_by"] or "GH_TOKEN" in loc["build_arg"]["created_by"]
    assert (loc["file"]["path"], loc["file"]["line"]) == ("etc/app/config.yml", 1)
    assert loc["file"]["layer"].startswith("sha256:")
    assert "COPY" in loc["file"]["created_by"] and "config.yml" in loc["file"]["created_by"]
    assert (loc["deleted"]["path"], loc["deleted"]["line"]) == ("tmp/secrets.txt", 2)
    assert loc["deleted"]["status"] == "deleted"
    assert (loc["nested"]["path"], loc["nested"]["nested"]) == ("opt/bundle.tgz", ["conf/app.ini"])
    assert loc["jar"]["nested"] == ["BOOT-INF/application.properties"]
    # decoys copied under /srv produce nothing
    assert [
        f for f in json.loads(res.stdout)["findings"] if f["location"]["path"].startswith("srv/")
    ] == []


def test_saved_archive_scans_offline_like_the_engine(
    docker_engine: Any, leaky_image: str, tmp_path: Path
) -> None:
    archive = tmp_path / "leaky.tar"
    with archive.open("wb") as f:
        for piece in docker_engine.client.api.get_image(leaky_image):
            f.write(piece)
    res = _cli(
        ["archive", str(archive), "--format", "sarif"],
        {**docker_engine.env, "DOCKER_HOST": "unix:///nonexistent"},
    )
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    assert len(doc["runs"][0]["results"]) >= len(P)
    assert all(v not in res.stdout for v in P.values())


@pytest.fixture
def leaky_containers(docker_engine: Any, busybox_image: str) -> Iterator[dict[str, str]]:
    rng = random.Random(77)
    vals = {
        "env": "glrt-" + rnd(rng, AN, 24),
        "arg": rnd(rng, AN, 20),
        "label": "shpat_" + rnd(rng, HEX, 32),
    }
    c = docker_engine.client.containers.run(
        busybox_image,
        ["sh", "-c", "sleep 300", "app", "--db-password", vals["arg"]],
        environment={"RUNNER_TOKEN": vals["env"]},
        labels={"shop.token": vals["label"]},
        name="leaky-web",
        network_mode="none",
        detach=True,
    )
    stopped = docker_engine.client.containers.create(
        busybox_image, ["true"], name="leaky-stopped", network_mode="none",
        environment={"STOPPED_SECRET": "sk_live_" + rnd(rng, AN, 30)},
    )  # fmt: skip
    try:
        yield vals
    finally:
        c.remove(force=True)
        stopped.remove(force=True)


def test_container_scan_env_args_labels_and_posture(
    docker_engine: Any, leaky_containers: dict[str, str]
) -> None:
    res = _cli(["containers", "--format", "json", "--reveal"], docker_engine.env)
    assert res.returncode == 1, res.stderr
    findings = json.loads(res.stdout)["findings"]
    found = _by_value(res.stdout)
    assert found[leaky_containers["env"]]["location"]["path"] == "container/Env"
    assert found[leaky_containers["arg"]]["location"]["path"] == "container/Cmd"
    assert found[leaky_containers["label"]]["location"]["path"] == "container/Labels"
    rules = {f["rule_id"] for f in findings if f["location"]["target"] == "leaky-web"}
    assert {"posture-root-user", "posture-secret-in-env", "posture-no-memory-limit"} <= rules
    assert "posture-privileged" not in rules  # (this sandbox cannot start privileged ones)
    assert not any(f["location"]["target"] == "leaky-stopped" for f in findings)
    res_all = _cli(["containers", "--all", "--format", "json"], docker_engine.env)
    assert any(
        f["location"]["target"] == "leaky-stopped" for f in json.loads(res_all.stdout)["findings"]
    )


def test_server_scan_recognises_a_managed_secret(
    docker_engine: Any, leaky_image: str, vaultside_server: Any, tmp_path: Path
) -> None:
    server = vaultside_server(DOCKER_HOST=docker_engine.base_url)
    api(server, "PUT", "secrets/app/boot", {"data": {"password": "old-" + rnd(RNG, AN, 16)}})
    api(server, "PUT", "secrets/app/boot", {"data": {"password": MANAGED}})
    started = api(server, "POST", "scans", {"kind": "image", "targets": [leaky_image]})
    deadline = time.monotonic() + 180
    record = started
    while record["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
        record = api(server, "GET", f"scans/{started['id']}")
    assert record["status"] == "done", record
    known = [f for f in record["findings"] if f.get("known")]
    assert [
        (k["known"]["path"], k["known"]["field"], k["known"]["version"], k["known"]["status"])
        for k in known
    ] == [("app/boot", "password", 2, "current")]
    assert known[0]["severity"] == "critical"
    assert known[0]["location"]["path"] == "opt/managed.txt"
    assert MANAGED not in json.dumps(record)
    # client-side: the index carries no plaintext, and the CLI finds the same secret with it
    index = api(server, "GET", "scans/known-index")
    assert MANAGED not in json.dumps(index)
    env = {**docker_engine.env, "VAULTSIDE_ADDR": server.addr, "VAULTSIDE_TOKEN": server.root_token}
    res = _cli(["image", leaky_image, "--known-from-server", "--format", "json"], env)
    assert res.returncode == 1, res.stderr
    assert any(
        f.get("known", {}).get("path") == "app/boot" for f in json.loads(res.stdout)["findings"]
    )


def test_unreadable_image_and_corrupt_archive_fail_cleanly(
    docker_engine: Any, tmp_path: Path
) -> None:
    res = _cli(["image", "vaultside-test/does-not-exist:1"], docker_engine.env)
    assert res.returncode == 4 and "not found" in res.stderr and "Traceback" not in res.stderr
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 8)
    res = _cli(["archive", str(bad)], docker_engine.env)
    assert res.returncode == 2 and "Error:" in res.stderr and "Traceback" not in res.stderr
    res = _cli(["containers"], {**docker_engine.env, "DOCKER_HOST": f"unix://{tmp_path}/no.sock"})
    assert res.returncode == 6 and "Traceback" not in res.stderr


def test_scan_routes_need_the_scan_capability(vaultside_server: Any) -> None:
    server = vaultside_server()
    api(
        server,
        "PUT",
        "sys/policies/reader",
        {"rules": [{"path": "secrets/*", "capabilities": ["read"]}]},
    )
    api(
        server,
        "PUT",
        "sys/policies/scanner",
        {"rules": [{"path": "scans", "capabilities": ["scan"]}]},
    )
    reader = api(server, "POST", "auth/token/create", {"policies": ["reader"]})["auth"]["token"]
    scanner = api(server, "POST", "auth/token/create", {"policies": ["scanner"]})["auth"]["token"]

    def status(token: str, method: str, path: str, body: object | None = None) -> int:
        headers = {"Content-Type": "application/json"}
        reply = request(
            server.addr, method, f"/v1/{path}", token=token, body=body, headers=headers, timeout=30
        )
        return reply.status

    body = {"kind": "containers"}
    assert status(reader, "POST", "scans", body) == 403
    assert status(reader, "GET", "scans/known-index") == 403
    assert status(scanner, "GET", "scans/known-index") == 403  # a capability of its own
    assert status(scanner, "POST", "scans", {"kind": "path", "targets": ["/etc"]}) == 400
    assert status(scanner, "GET", "scans/nope") == 404
