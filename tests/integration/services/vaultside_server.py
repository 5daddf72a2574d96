"""``vaultside serve --dev`` in a subprocess on a free loopback port with its own data dir."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .process import free_port, spawn, start_on_free_port, terminate, wait_until

_TOKEN_LINE = re.compile(rb"Root token: (\S+)")


def _health_status(addr: str) -> int:
    try:
        with urllib.request.urlopen(f"{addr}/v1/sys/health", timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@dataclass
class VaultsideServer:
    """One ``vaultside serve --dev`` process.

    ``env`` holds the environment overrides it was started with (``VAULTSIDE_*`` names).
    ``restart()`` keeps the data dir: the server re-uses its data and prints a new root token,
    which replaces ``root_token``. Output (stdout+stderr) goes to ``log_path``, outside the
    data dir, so tests can scan the data dir for plaintext.
    """

    data_dir: Path
    log_path: Path
    port: int
    env: dict[str, str]
    root_token: str = field(default="", repr=False)
    proc: subprocess.Popen[bytes] | None = None
    _offset: int = 0

    @property
    def addr(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        """Everything the server printed so far (all runs)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        """Start the process, read ``Root token: <token>`` and wait for ``/v1/sys/health`` 200."""
        if self.proc is not None and self.proc.poll() is None:
            return
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        argv = [
            sys.executable, "-m", "vaultside", "serve", "--dev",
            "--listen", f"127.0.0.1:{self.port}",
        ]  # fmt: skip
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("VAULTSIDE_")},
            "VAULTSIDE_DATA_DIR": str(self.data_dir),
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }
        self.proc = spawn(argv, self.log_path, env=env, cwd=self.data_dir.parent)
        wait_until(
            self._read_token, timeout=60, what="vaultside serve (root token)",
            proc=self.proc, log_path=self.log_path,
        )  # fmt: skip
        wait_until(
            lambda: _health_status(self.addr) == 200, timeout=30, what="vaultside /v1/sys/health",
            proc=self.proc, log_path=self.log_path,
        )  # fmt: skip

    def _read_token(self) -> bool:
        with self.log_path.open("rb") as f:
            f.seek(self._offset)
            match = _TOKEN_LINE.search(f.read())
        if match is None:
            return False
        self.root_token = match.group(1).decode()
        return True

    def stop(self) -> None:
        """Graceful stop (SIGTERM, SIGKILL after 15 s)."""
        terminate(self.proc, sig=signal.SIGTERM, grace=15)

    def kill(self) -> None:
        """SIGKILL, no cleanup: for crash-recovery tests."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        """Stop and start again with the same data dir, port and env (new root token)."""
        self.stop()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _port_busy(self.port):
            time.sleep(0.05)
        self.start()


def _port_busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class VaultsideServerFactory:
    """Creates servers under one temp dir and stops them all on ``close()``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.servers: list[VaultsideServer] = []

    def __call__(self, **settings_env: object) -> VaultsideServer:
        """Start a server; keyword names are env var names, e.g. ``VAULTSIDE_STORAGE__KIND``."""
        index = len(self.servers)
        data_dir = self.root / f"server{index}" / "data"
        data_dir.mkdir(parents=True)
        data_dir.chmod(0o700)
        server = VaultsideServer(
            data_dir=data_dir,
            log_path=data_dir.parent / "output.log",
            port=free_port(),
            env={k: str(v) for k, v in settings_env.items()},
        )
        self.servers.append(server)
        try:
            start_on_free_port(server)
        except BaseException:
            server.kill()
            raise
        return server

    def close(self) -> None:
        """Stop every server started by this factory."""
        for server in self.servers:
            server.stop()
