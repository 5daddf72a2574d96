"""deploy/Dockerfile built for real (against a local stand-in base) and run hardened."""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from .services.docker_engine import DockerEngine
from .services.process import ServiceUnavailable, free_port, remove_tree, short_tempdir
from .test_deploy_support import base_name, build_vaultside_image, pinned_base, unavailable

pytestmark = pytest.mark.docker

# What the compose example and the Kubernetes manifests ask of every container.
HARDENED: dict[str, Any] = {
    "read_only": True,
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges:true"],
    "mem_limit": "256m",
    "pids_limit": 128,
    "nano_cpus": 1_000_000_000,
    "tmpfs": {"/tmp": "rw,noexec,nosuid,size=16m"},
    "network_mode": "host",
}
DATA = "/var/lib/vaultside"


@pytest.fixture(scope="module")
def image(docker_engine: DockerEngine) -> Iterator[str]:
    """The vaultside image, built once for this module."""
    workdir = short_tempdir("img")
    try:
        try:
            yield build_vaultside_image(docker_engine, workdir)
        except ServiceUnavailable as exc:
            unavailable(f"stand-in base image unavailable: {exc}")
    finally:
        remove_tree(workdir)


@pytest.fixture
def volume(docker_engine: DockerEngine) -> Iterator[str]:
    """A fresh named volume for the data dir."""
    name = f"vs-data-{secrets.token_hex(4)}"
    vol = docker_engine.client.volumes.create(name)
    try:
        yield name
    finally:
        for c in docker_engine.client.containers.list(all=True):
            c.remove(force=True)
        vol.remove(force=True)


def run_once(engine: DockerEngine, image: str, volume: str, *args: str, **kw: Any) -> str:
    """Run one hardened container to completion; its output."""
    out = engine.client.containers.run(
        image,
        list(args),
        volumes={volume: {"bind": DATA, "mode": "rw"}},
        remove=True,
        stderr=True,
        **{**HARDENED, **kw},
    )
    return bytes(out).decode()


def test_base_is_pinned_by_digest_and_stand_in_uses_its_name() -> None:
    ref = pinned_base()
    assert ref.startswith("debian:bookworm-slim@sha256:")
    assert len(ref.split("@sha256:", 1)[1]) == 64
    assert base_name() == "debian:bookworm-slim"


def test_image_metadata(docker_engine: DockerEngine, image: str) -> None:
    config = docker_engine.client.images.get(image).attrs["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["vaultside"]
    assert config["Healthcheck"]["Test"] == ["CMD", "vaultside", "operator", "seal-status"]
    assert DATA in config["Volumes"]
    labels = config["Labels"]
    for key in ("title", "description", "version", "revision", "created", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert labels["org.opencontainers.image.revision"] == "test"
    assert labels["org.opencontainers.image.created"] == "1970-01-01T00:00:00Z"  # RFC 3339
    for key in ("source", "documentation"):
        assert labels[f"org.opencontainers.image.{key}"].startswith("https://"), key
    assert labels["org.opencontainers.image.base.name"] == base_name()


def test_no_shell_package_manager_or_setuid(docker_engine: DockerEngine, image: str) -> None:
    probe = (
        "import os, json, pwd\n"
        "paths = ['/bin/sh', '/usr/bin/sh', '/usr/bin/bash', '/usr/bin/dash', '/usr/bin/apt',\n"
        "         '/usr/bin/apt-get', '/usr/bin/dpkg', '/usr/bin/perl', '/usr/bin/su']\n"
        "setuid = []\n"
        "for root, dirs, files in os.walk('/', topdown=True):\n"
        "    skip = ('/proc', '/sys', '/dev')\n"
        "    dirs[:] = [d for d in dirs if os.path.join(root, d) not in skip]\n"
        "    for f in files:\n"
        "        p = os.path.join(root, f)\n"
        "        try:\n"
        "            if os.lstat(p).st_mode & 0o6000: setuid.append(p)\n"
        "        except OSError: pass\n"
        "print(json.dumps({'present': [p for p in paths if os.path.lexists(p)],\n"
        "  'setuid': setuid, 'uid': os.getuid(), 'gid': os.getgid(),\n"
        "  'dpkg_status': os.path.exists('/var/lib/dpkg/status')}))\n"
    )
    out = docker_engine.client.containers.run(
        image, ["-c", probe], entrypoint=["python3"], remove=True, **HARDENED
    )
    facts = json.loads(bytes(out).decode().strip().splitlines()[-1])
    assert facts["present"] == []
    assert facts["setuid"] == []
    assert (facts["uid"], facts["gid"]) == (10001, 10001)
    assert facts["dpkg_status"]  # kept so image scanners can list package versions


def _health(container: Any) -> str:
    container.reload()
    return str(container.attrs["State"].get("Health", {}).get("Status", "none"))


def _api(addr: str, method: str, path: str, token: str, body: Any = None) -> dict[str, Any]:
    req = urllib.request.Request(
        f"{addr}/v1/{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else {}


def test_serves_read_only_non_root_and_turns_healthy(
    docker_engine: DockerEngine, image: str, volume: str
) -> None:
    init = run_once(docker_engine, image, volume, "operator", "init")
    assert "Created root key file /var/lib/vaultside/vaultside.key" in init
    port = free_port()
    addr = f"http://127.0.0.1:{port}"
    env = {"VAULTSIDE_SERVER__LISTEN": f"127.0.0.1:{port}", "VAULTSIDE_ADDR": addr}
    server = docker_engine.client.containers.run(
        image,
        detach=True,
        environment=env,
        volumes={volume: {"bind": DATA, "mode": "rw"}},
        # the image's own health command, probed every second instead of every 10 s
        healthcheck={"test": [], "interval": 1_000_000_000, "start_period": 1_000_000_000},
        **HARDENED,
    )
    deadline = time.monotonic() + 60
    while _health(server) != "healthy":
        assert _health(server) != "unhealthy", server.logs().decode()[-3000:]
        assert time.monotonic() < deadline, server.logs().decode()[-3000:]
        time.sleep(0.5)

    minted = run_once(docker_engine, image, volume, "operator", "root-token", environment=env)
    token = minted.split("Root token:", 1)[1].split()[0]
    value = secrets.token_urlsafe(24)
    _api(addr, "PUT", "secrets/app/db", token, {"data": {"password": value}})
    assert _api(addr, "GET", "secrets/app/db", token)["data"] == {"password": value}

    server.reload()
    assert server.attrs["HostConfig"]["ReadonlyRootfs"] is True
    assert docker_engine.client.api.diff(server.id) is None or not any(
        not c["Path"].startswith("/tmp") for c in docker_engine.client.api.diff(server.id)
    )
    server.stop(timeout=10)
    assert server.wait(timeout=10)["StatusCode"] == 0, server.logs().decode()[-2000:]
    logs = server.logs()
    assert value.encode() not in logs
    # SECURITY: the only writable place is the volume, and it holds no plaintext.
    data = Path(docker_engine.client.volumes.get(volume).attrs["Mountpoint"])
    files = [p for p in data.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"vaultside.key", "vaultside.db", "audit.log"}
    for path in files:
        assert value.encode() not in path.read_bytes(), path
    assert all(p.stat().st_uid == 10001 for p in files)


def test_stand_in_is_not_pulled(docker_engine: DockerEngine, image: str) -> None:
    # The build used the local stand-in: no image in the engine carries a registry digest.
    for img in docker_engine.client.images.list():
        assert not img.attrs.get("RepoDigests"), img.tags
    with pytest.raises(docker.errors.ImageNotFound):
        docker_engine.client.images.get(pinned_base())


def test_kubernetes_startup_probe_works_in_the_image(
    docker_engine: DockerEngine, image: str
) -> None:
    manifest = Path(__file__).resolve().parents[2] / "deploy/kubernetes/example-app.yaml"
    pod = next(d for d in yaml.safe_load_all(manifest.read_text()) if d and d["kind"] == "Pod")
    (sidecar,) = pod["spec"]["initContainers"]
    probe = sidecar["startupProbe"]["exec"]["command"]
    ready = next(a.split("=", 1)[1] for a in sidecar["args"] if a.startswith("--ready-file="))
    run = docker_engine.client.containers.run

    def probe_in(setup: list[str]) -> int:
        # the probe runs after an optional step that creates the ready file, in one container
        script = f"import subprocess, sys; {'; '.join(setup) or 'pass'}; " + (
            f"sys.exit(subprocess.call({probe!r}))"
        )
        container = run(image, ["-c", script], entrypoint=["python3"], detach=True, **HARDENED)
        try:
            return int(container.wait(timeout=60)["StatusCode"])
        finally:
            container.remove(force=True)

    assert probe_in([]) == 1  # not ready yet: the app must not start
    assert probe_in([f"open({ready!r}, 'w').close()"]) == 0


def test_image_size(docker_engine: DockerEngine, image: str) -> None:
    size = int(docker_engine.client.images.get(image).attrs["Size"])
    print(f"vaultside image: {size / 1e6:.0f} MB")
    assert size < 450e6, size  # 377 MB measured (Debian python3 + venv with hyperscan etc.)
