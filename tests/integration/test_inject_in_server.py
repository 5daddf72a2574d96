"""The volume plugin inside ``vaultside serve`` (``inject.plugin_in_server``): a container
mounts a secret through it, and a changed secret reaches a running container (re-delivery).
REAL dockerd and ``vaultside serve``; no separate plugin process."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest

from .services.docker_engine import DockerEngine
from .services.process import wait_until
from .services.vaultside_server import VaultsideServerFactory
from .stack import SAFE, api, make_token

pytestmark = [pytest.mark.docker, pytest.mark.timeout(180)]


def test_serve_runs_the_plugin_and_redelivers(
    docker_engine: DockerEngine, busybox_image: str, vaultside_server: VaultsideServerFactory
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the volume plugin mounts tmpfs: needs root")
    root = vaultside_server.root
    (root / "roles.toml").write_text('[roles.web]\ntoken_file = "web.token"\n')
    name = f"vaultside-test-{secrets.token_hex(4)}"
    socket = Path("/run/docker/plugins") / f"{name}.sock"
    server = vaultside_server(
        VAULTSIDE_INJECT__PLUGIN_IN_SERVER="true",
        VAULTSIDE_INJECT__PLUGIN_NAME=name,
        VAULTSIDE_INJECT__ROLES_FILE=str(root / "roles.toml"),
        VAULTSIDE_INJECT__MOUNT_ROOT=str(root / "mounts"),
        VAULTSIDE_INJECT__DOCKER_HOST=docker_engine.base_url,
        VAULTSIDE_ROTATION__REDELIVER_INTERVAL="0.1",
    )
    wait_until(socket.is_socket, timeout=30, what="the plugin socket of serve", proc=server.proc)
    make_token(server, "web", [{"path": "secrets/app/*", "capabilities": ["read"]}],
               root / "web.token")  # fmt: skip
    first = f"p{secrets.token_hex(16)}"
    api(server, "PUT", "secrets/app/db", {"data": {"password": first}})
    volume, container = f"v{secrets.token_hex(4)}", f"inserver-{secrets.token_hex(4)}"
    mount = (
        f"type=volume,volume-driver={name},src={volume},dst=/run/secrets,"
        "volume-opt=secret.password=kv:app/db#password,volume-opt=uid=1000,volume-opt=gid=1000"
    )

    def docker(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", *args], env=docker_engine.env, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip

    try:
        res = docker(
            "run", "-d", "--name", container, "--network", "none", *SAFE,
            "--label", "io.vaultside.role=web", "--mount", mount, busybox_image,
            "sh", "-c", "while true; do sleep 1; done",
        )  # fmt: skip
        assert res.returncode == 0, res.stderr + server.output()[-3000:]

        def held() -> str:
            return docker("exec", container, "cat", "/run/secrets/password").stdout

        assert held() == first
        tmpfs = docker("exec", container, "grep", " /run/secrets ", "/proc/mounts").stdout
        assert tmpfs.split()[2] == "tmpfs", tmpfs
        second = f"p{secrets.token_hex(16)}"
        api(server, "PUT", "secrets/app/db", {"data": {"password": second}})
        wait_until(lambda: held() == second, timeout=10, what="re-delivered file")
    finally:
        docker("rm", "-f", container)
        docker("volume", "rm", "-f", volume)
    server.stop()
    assert not socket.exists()  # the component closed with the server
    text = server.output()
    assert first not in text and second not in text
