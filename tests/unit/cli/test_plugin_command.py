"""``vaultside plugin`` runs the one plugin component until a signal (no dockerd needed here)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from click.testing import CliRunner

from vaultside.cli.main import cli
from vaultside.cli.render import EXIT_INVALID


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "VAULTSIDE_DATA_DIR": str(tmp_path),
        "VAULTSIDE_ADDR": "http://127.0.0.1:9",
        "VAULTSIDE_INJECT__ADMISSION__IMAGE_FINDINGS": "off",
    }


def test_without_roles_the_plugin_refuses_to_start(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["plugin", "--name", "vs-cli-unit"], env=_env(tmp_path))
    assert result.exit_code == EXIT_INVALID, result.output
    assert "inject.roles_file is required" in result.output


def test_the_plugin_serves_its_socket_until_sigterm(tmp_path: Path) -> None:
    roles = tmp_path / "roles.toml"
    roles.write_text("[roles.web]\n")
    sockets = tmp_path / "plugins"
    args = [
        "plugin", "--name", "vs-cli-unit", "--roles", str(roles), "--socket-dir", str(sockets),
        "--mount-root", str(tmp_path / "mnt"), "--state-dir", str(tmp_path / "state"),
    ]  # fmt: skip
    socket = sockets / "vs-cli-unit.sock"

    def stop_when_listening() -> None:
        for _ in range(500):
            if socket.is_socket():
                break
            threading.Event().wait(0.02)
        # Only to the loop's handler: never the default action, which would end pytest.
        if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None):
            os.kill(os.getpid(), signal.SIGTERM)

    stopper = threading.Thread(target=stop_when_listening)
    stopper.start()
    try:
        result = CliRunner().invoke(cli, args, env=_env(tmp_path))
    finally:
        stopper.join()
    assert result.exit_code == 0, result.output
    assert f"vaultside volume plugin listening on {socket}" in result.output
    assert not socket.exists()  # closed on the signal: the socket is gone
