"""Finding 10 (listener side): a TLS key others can read is refused; sockets are never open.

- ``vaultside serve`` with a TLS key file of mode 0644 exits at start with one clear line
  naming the setting and the mode (0600 starts and serves HTTPS).
- The volume plugin's unix socket already has its final mode (0600) when ``listen()`` is
  called: there is no moment in which the umask's mode lets another user connect. The plugin
  runs for real on a real socket; ``listen`` is only observed.
"""

from __future__ import annotations

import os
import socket
import ssl
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.integration.services.process import free_port, spawn, terminate, wait_until
from tests.unit.api.pki import make_pki
from vaultside.inject.plugin import PluginServer


def _serve(tmp_path: Path, key_mode: int) -> tuple[list[str], dict[str, str], int]:
    pki = make_pki(tmp_path)
    pki.server_key.chmod(key_mode)
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTSIDE_")}
    env.update(
        VAULTSIDE_DATA_DIR=str(data),
        VAULTSIDE_SERVER__TLS_CERT_FILE=str(pki.server_cert),
        VAULTSIDE_SERVER__TLS_KEY_FILE=str(pki.server_key),
    )
    argv = [sys.executable, "-m", "vaultside", "serve", "--dev", "--listen", f"127.0.0.1:{port}"]
    return argv, env, port


def test_a_tls_key_readable_by_others_is_refused_at_start(tmp_path: Path) -> None:
    argv, env, _ = _serve(tmp_path, 0o644)
    proc = subprocess.run(
        argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode != 0, proc.stdout[-500:]
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, proc.stderr
    assert "tls_key_file" in errors[0] and "0644" in errors[0], errors[0]


def test_a_private_tls_key_is_accepted(tmp_path: Path) -> None:
    argv, env, port = _serve(tmp_path, 0o600)
    log_path = tmp_path / "server.log"
    proc = spawn(argv, log_path, env=env, cwd=tmp_path)
    ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(
                f"https://127.0.0.1:{port}/v1/sys/health", context=ctx, timeout=2
            ) as resp:
                return int(resp.status) == 200
        except OSError:
            return False

    try:
        wait_until(healthy, timeout=60, what="vaultside over TLS", proc=proc, log_path=log_path)
    finally:
        terminate(proc, grace=10)


async def test_the_plugin_socket_has_its_mode_before_it_listens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class _Manager:
        async def recover(self) -> None:
            """Nothing to recover: only the listener is under test."""

    socket_dir = tmp_path / "plugins"
    seen: list[int] = []
    real_listen = socket.socket.listen

    def listen(sock: socket.socket, *args: Any) -> None:
        if sock.family == socket.AF_UNIX:
            name = sock.getsockname()
            seen.append(stat.S_IMODE(os.stat(name).st_mode))
        real_listen(sock, *args)

    monkeypatch.setattr(socket.socket, "listen", listen)
    old = os.umask(0o022)  # a usual umask: without a chmod the socket would be 0755
    server = PluginServer(_Manager(), name="vs-h4-mode", socket_dir=socket_dir)  # type: ignore[arg-type]
    await server.start()
    try:
        # bind_unix listens, then asyncio's server calls listen() again: both must see 0600.
        assert seen and set(seen) == {0o600}, f"mode at listen(): {[oct(m) for m in seen]}"
        assert stat.S_IMODE(server.socket_path.stat().st_mode) == 0o600
    finally:
        await server.stop()
        os.umask(old)
