"""``vaultside sidecar`` against a real vaultside server and a real dockerd."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .services.docker_engine import DockerEngine
from .services.process import (
    free_port,
    remove_tree,
    short_tempdir,
    spawn,
    terminate,
    wait_until,
)
from .services.vaultside_server import VaultsideServer
from .stack import READ_APP, api, make_token, serving, shared_tmpfs, sidecar_argv

pytestmark = pytest.mark.docker


@dataclass
class SidecarStack:
    """A server with a secret and a token that may read it, plus a host tmpfs directory."""

    engine: DockerEngine
    image: str
    server: VaultsideServer
    root: Path
    token_file: Path
    shared: Path

    def sidecar_argv(self, *extra: str) -> list[str]:
        files = {
            "password": "kv:app/db#password",
            "db.env": "DB_USER=kv:app/db#user;DB_PASSWORD=kv:app/db#password",
        }
        return sidecar_argv(
            self.server, self.token_file, self.shared, files,
            "--opt", "format.db.env=env", "--opt", "uid=1000", "--opt", "gid=1000", *extra,
        )  # fmt: skip

    def docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", *args], env=self.engine.env, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip

    def put_password(self, value: str) -> None:
        api(self.server, "PUT", "secrets/app/db", {"data": {"user": "app", "password": value}})


@pytest.fixture(scope="module")
def sstack(docker_engine: DockerEngine, busybox_image: str) -> Iterator[SidecarStack]:
    if os.geteuid() != 0:
        pytest.skip("mounting the shared tmpfs needs root")
    root = short_tempdir("side")
    try:
        with serving(root) as server, shared_tmpfs(root / "shared") as shared:
            token_file = root / "app.token"
            make_token(server, "app", READ_APP, token_file)
            st = SidecarStack(docker_engine, busybox_image, server, root, token_file, shared)
            st.put_password(f"p{secrets.token_hex(12)}")
            yield st
    finally:
        remove_tree(root)


def test_once_then_app_reads_files(sstack: SidecarStack) -> None:
    value = f"p{secrets.token_hex(12)}"
    sstack.put_password(value)
    res = subprocess.run(sstack.sidecar_argv("--once"), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    out = sstack.docker(
        "run", "--rm", "--network", "none", "--user", "1000:1000",
        "-v", f"{sstack.shared}:/run/secrets:ro", sstack.image,
        "sh", "-c", "stat -c '%u %a' /run/secrets/password; cat /run/secrets/password; echo;"
        " cat /run/secrets/db.env",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"1000 400\n{value}\nDB_USER=app\nDB_PASSWORD={value}\n"
    assert value not in res.stderr and value not in res.stdout


def test_once_fails_clearly(sstack: SidecarStack, tmp_path: Path) -> None:
    argv = sstack.sidecar_argv("--once", "--secret", "missing=kv:app/nope#x")
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert "secret.missing: kv:app/nope#x" in res.stderr, res.stderr
    disk = [*sstack.sidecar_argv("--once")]
    disk[disk.index("--dir") + 1] = str(tmp_path)
    res = subprocess.run(disk, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "not on tmpfs" in res.stderr, res.stderr
    assert list(tmp_path.iterdir()) == []


def test_long_running_rerenders_and_signals_app(sstack: SidecarStack) -> None:
    first = f"p{secrets.token_hex(12)}"
    sstack.put_password(first)
    script = (
        "trap 'echo HUP:$(cat /run/secrets/password)' HUP; echo started;"
        " while :; do sleep 0.05; done"
    )
    app = sstack.docker(
        "run", "-d", "--network", "none", "--user", "1000:1000",
        "-v", f"{sstack.shared}:/run/secrets:ro", sstack.image, "sh", "-c", script,
    )  # fmt: skip
    assert app.returncode == 0, app.stderr
    cid = app.stdout.strip()
    ready = sstack.root / "ready"
    log = sstack.root / "sidecar.log"
    port = free_port()
    argv = sstack.sidecar_argv(
        "--ready-file", str(ready), "--ready-http", f"127.0.0.1:{port}",
        "--reload-container", cid, "--reload-signal", "HUP",
        "--docker-host", sstack.engine.base_url,
    )  # fmt: skip
    proc = spawn(argv, log)
    try:
        wait_until(ready.exists, timeout=30, what="sidecar ready", proc=proc, log_path=log)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as resp:
            assert resp.status == 200 and json.loads(resp.read()) == {"ready": True}
        wait_until(lambda: "started" in sstack.docker("logs", cid).stdout, timeout=10, what="app")
        assert (sstack.shared / "password").read_text() == first
        second = f"p{secrets.token_hex(12)}"
        t0 = time.monotonic()
        sstack.put_password(second)
        wait_until(
            lambda: f"HUP:{second}" in sstack.docker("logs", cid).stdout,
            timeout=10, what="app got HUP with the new value", proc=proc, log_path=log,
        )  # fmt: skip
        assert time.monotonic() - t0 < 5
        assert f"DB_PASSWORD={second}" in (sstack.shared / "db.env").read_text()
    finally:
        terminate(proc, grace=10)
        sstack.docker("rm", "-f", cid)
    assert proc.returncode == 0, log.read_text()
    assert not ready.exists()
    text = log.read_text()
    assert first not in text and second not in text
    # This token may not report versions: rendering worked anyway, the refusal was logged.
    assert text.count("consumer report failed") == 1, text


def test_rotation_status_shows_the_sidecar_holding_the_current_version(
    sstack: SidecarStack,
) -> None:
    server = sstack.server
    api(server, "PUT", "sys/policies/reporter", {"rules": [
        {"path": "consumers/sidecar-*", "capabilities": ["update"]},
    ]})  # fmt: skip
    auth = api(server, "POST", "auth/token/create", {"policies": ["app", "reporter"]})["auth"]
    token_file = sstack.root / "reporter.token"
    token_file.write_text(auth["token"])
    token_file.chmod(0o600)
    api(server, "PUT", "secrets/app/rot", {"data": {"token": f"t{secrets.token_hex(12)}"}})
    api(server, "PUT", "rotation/policies/app/rot", {
        "every": "30d",
        "generator": {"kind": "token", "prefix": "rot_", "length": 40},
        "target": {"kind": "kv"},
    })  # fmt: skip
    consumer = f"sidecar-it-{secrets.token_hex(4)}"
    ready = sstack.root / "ready-reporter"
    log = sstack.root / "sidecar-reporter.log"
    argv = sstack.sidecar_argv(
        "--secret", "rot_token=kv:app/rot#token", "--consumer", consumer,
        "--ready-file", str(ready), "--interval", "0.1",
    )  # fmt: skip
    argv[argv.index("--token-file") + 1] = str(token_file)

    def mine() -> dict[str, Any] | None:
        status = api(server, "GET", "rotation/status/app/rot")
        found = [c for c in status["consumers"] if c["consumer"] == consumer]
        return {**found[0], "state": status["state"]} if found else None

    proc = spawn(argv, log)
    try:
        wait_until(ready.exists, timeout=30, what="sidecar ready", proc=proc, log_path=log)
        wait_until(lambda: mine() is not None, timeout=10, what="first report", proc=proc)
        first = mine()
        assert first is not None
        assert (first["kind"], first["version"], first["stale"]) == ("sidecar", 1, False)
        run = api(server, "POST", "rotation/rotate/app/rot")["run"]
        assert run["result"] == "ok"
        new = api(server, "GET", "secrets/app/rot")["data"]["token"]
        t0 = time.monotonic()
        wait_until(
            lambda: (sstack.shared / "rot_token").read_text() == new,
            timeout=10, what="the rotated file", proc=proc, log_path=log,
        )  # fmt: skip
        wait_until(
            lambda: bool((m := mine()) and m["current"]),
            timeout=10, what="status: sidecar holds the current version", proc=proc, log_path=log,
        )  # fmt: skip
        assert time.monotonic() - t0 < 5
        held = mine()
        assert held is not None and held["version"] == held["state"]["version"] == 2
    finally:
        terminate(proc, grace=10)
    assert proc.returncode == 0, log.read_text()
    text = log.read_text()
    assert new not in text and "consumer report failed" not in text


def test_once_gives_up_at_its_deadline_with_exit_7(sstack: SidecarStack) -> None:
    sstack.server.stop()
    try:
        t0 = time.monotonic()
        res = subprocess.run(
            sstack.sidecar_argv("--once", "--timeout", "2"),
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "VAULTSIDE_LOG_FORMAT": "text"},
        )  # fmt: skip
        took = time.monotonic() - t0
    finally:
        sstack.server.start()
    assert res.returncode == 7, res.stderr
    assert "first render: still failing after" in res.stderr, res.stderr
    assert res.stderr.count("retrying") >= 2, res.stderr
    assert 2 <= took < 20
    assert sstack.token_file.read_text() not in res.stderr


@pytest.mark.parametrize("once", [True, False], ids=["once", "long-running"])
def test_sidecar_started_before_its_server_renders_as_soon_as_it_is_up(
    sstack: SidecarStack, once: bool
) -> None:
    value = f"p{secrets.token_hex(12)}"
    sstack.put_password(value)
    sstack.server.stop()
    ready = sstack.root / f"early-ready-{once}"
    log = sstack.root / f"early-{once}.log"
    mode = ["--once"] if once else ["--ready-file", str(ready)]
    env = {**os.environ, "VAULTSIDE_SIDECAR_TIMEOUT": "120"}  # the env form of --timeout
    proc = spawn(sstack.sidecar_argv(*mode), log, env=env)
    try:
        time.sleep(5)
        # Started 5 s before its server: it must still be waiting (not exited 6).
        assert proc.poll() is None, log.read_text()
        sstack.server.start()  # returns once /v1/sys/health answers 200
        up = time.monotonic()
        if once:
            proc.wait(timeout=30)
            assert proc.returncode == 0, log.read_text()
        else:
            wait_until(ready.exists, timeout=30, what="sidecar ready", proc=proc, log_path=log)
        # full-jitter steps are capped at 2 s on the first render
        assert time.monotonic() - up < 5, log.read_text()
        assert (sstack.shared / "password").read_text() == value
    finally:
        terminate(proc, grace=10)
        sstack.server.start()  # a no-op unless an assertion above left it stopped
    text = log.read_text()
    assert "retrying" in text and "first render" in text
    assert value not in text and sstack.token_file.read_text() not in text
