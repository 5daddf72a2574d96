"""A non-dev ``vaultside serve`` that starts sealed, and the ``operator`` commands around it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .services.process import free_port, spawn, terminate, wait_until


def _status(
    url: str, token: str | None = None, method: str = "GET"
) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(url, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


class Server:
    """``vaultside serve`` (not dev) with its own data dir and env."""

    def __init__(self, root: Path) -> None:
        self.data_dir = root / "data"
        self.data_dir.mkdir(mode=0o700)
        self.port = free_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        self.log = root / "serve.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("VAULTSIDE_")},
            "VAULTSIDE_DATA_DIR": str(self.data_dir),
            "VAULTSIDE_SERVER__LISTEN": f"127.0.0.1:{self.port}",
            "VAULTSIDE_ADDR": self.addr,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "vaultside", "serve"]
        self.proc = spawn(argv, self.log, env=self.env, cwd=self.data_dir.parent)
        wait_until(
            lambda: _status(f"{self.addr}/v1/sys/seal-status")[0] == 200,
            timeout=60, what="vaultside serve", proc=self.proc, log_path=self.log,
        )  # fmt: skip

    def cli(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if token:
            env["VAULTSIDE_TOKEN"] = token
        return subprocess.run(
            [sys.executable, "-m", "vaultside", *args],
            env=env, cwd=self.data_dir.parent, capture_output=True, text=True, timeout=60,
        )  # fmt: skip


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path)
    srv.start()
    yield srv
    terminate(srv.proc, sig=signal.SIGTERM, grace=15)


def test_starts_sealed_then_unseals_when_the_key_is_created(server: Server) -> None:
    status, body = _status(f"{server.addr}/v1/sys/health")
    assert status == 501 and body["sealed"] is True  # no key yet: not initialized
    status, body = _status(f"{server.addr}/v1/secrets/a", token="vs.whatever")
    assert status == 503
    assert "sealed" in body["errors"][0]  # type: ignore[index]
    result = server.cli("operator", "seal-status", "--json")
    assert result.returncode == 2, result.stderr
    assert json.loads(result.stdout)["sealed"] is True

    result = server.cli("operator", "init")
    assert result.returncode == 0, result.stderr
    key = server.data_dir / "vaultside.key"
    assert key.stat().st_mode & 0o777 == 0o600
    again = server.cli("operator", "init")
    assert again.returncode != 0 and "Error:" in again.stderr

    wait_until(
        lambda: _status(f"{server.addr}/v1/sys/health")[0] == 200,
        timeout=30, what="unseal after key file appeared", proc=server.proc, log_path=server.log,
    )  # fmt: skip
    assert server.cli("operator", "seal-status").returncode == 0

    minted = server.cli("operator", "root-token")
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.split("Root token: ", 1)[1].strip()
    status, _ = _status(f"{server.addr}/v1/auth/token/lookup-self", token=token)
    assert status == 200

    rotated = server.cli("operator", "rotate-key", token=token)
    assert rotated.returncode == 0, rotated.stderr
    assert "term is now 2" in rotated.stdout
    wait_until(
        lambda: (_status(f"{server.addr}/v1/sys/key-status", token=token)[1].get("rewrap") or {})
        .get("done") is True,  # type: ignore[union-attr]
        timeout=30, what="rewrap done",
    )  # fmt: skip
    denied = server.cli("operator", "rotate-key", token="vs.notarealtoken")
    assert denied.returncode != 0
