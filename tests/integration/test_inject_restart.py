"""The volume plugin across restarts: its own (mounts recovered) and dockerd's."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest

from .services.docker_engine import DOCKERD, DockerEngine, build_busybox_image
from .services.process import ServiceUnavailable, spawn, terminate, wait_until
from .stack import SAFE, Stack

pytestmark = pytest.mark.docker


def test_plugin_restart_recovers_mounts(stack: Stack) -> None:
    vol = stack.volume()
    name = f"inj-{secrets.token_hex(3)}"
    res = stack.docker(
        "run", "-d", "--name", name, "--network", "none", *SAFE, "--label", "io.vaultside.role=web",
        "--mount", stack.mount_arg(vol, {"secret.pw": "kv:app/db#password"}), stack.image,
        "sleep", "300",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    try:
        assert len(stack.our_mounts()) == 1
        stack.stop_plugin()
        assert not stack.socket.exists()
        stack.start_plugin()
        out = stack.docker("exec", name, "cat", "/run/secrets/pw")
        assert out.stdout == stack.values["password"]
        # A second container can start with the restarted plugin while the first runs.
        ok = stack.run(
            stack.volume(), {"secret.pw": "kv:app/api#token"},
            [*SAFE, "--label", "io.vaultside.role=web"], "cat /run/secrets/pw",
        )  # fmt: skip
        assert ok.stdout == stack.values["token"], ok.stderr
    finally:
        stack.docker("rm", "-f", name)
    deadline = time.monotonic() + 10
    while stack.our_mounts() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stack.our_mounts() == []


def _dockerd_argv(engine: DockerEngine) -> list[str]:
    # The same flags the harness starts its engines with (services/docker_engine.py).
    return [
        DOCKERD, "--host", engine.base_url, "--data-root", str(engine.data_root),
        "--exec-root", str(engine.root / "exec"), "--pidfile", str(engine.root / "docker.pid"),
        "--bridge=none", "--iptables=false", "--ip-masq=false", "--shutdown-timeout=2",
    ]  # fmt: skip


def test_survives_dockerd_restart(stack: Stack) -> None:
    """A private engine (the session one is shared): restart it under a running container."""
    try:
        engine = DockerEngine.start()
    except ServiceUnavailable as exc:
        pytest.skip(f"second dockerd unavailable: {exc}")
    name = f"vaultside-test-{secrets.token_hex(4)}"
    env = stack.plugin_env | {
        "DOCKER_HOST": engine.base_url,
        "VAULTSIDE_INJECT__STATE_DIR": str(stack.root / "plugin2"),
        "VAULTSIDE_INJECT__AUDIT_FILE": str(stack.root / "plugin2" / "audit.log"),
    }
    mounts = stack.root / "mounts2"
    other = Stack(engine, build_busybox_image(engine), stack.server, stack.root, name,
                  plugin_env=env, values=stack.values)  # fmt: skip
    sock = other.socket
    plugin = other.spawn_plugin(mount_root=mounts, log=stack.root / "plugin2.log")
    vol, ctr = other.volume(), f"inj-{secrets.token_hex(3)}"

    def mounted() -> list[str]:
        return [
            x for x in Path("/proc/self/mountinfo").read_text().splitlines() if str(mounts) in x
        ]

    try:
        wait_until(sock.is_socket, timeout=30, what="plugin 2", proc=plugin)
        res = other.docker(
            "run", "-d", "--name", ctr, "--network", "none", *SAFE,
            "--label", "io.vaultside.role=web", "--mount",
            other.mount_arg(vol, {"secret.pw": "kv:app/db#password"}), other.image, "sleep", "600",
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert len(mounted()) == 1
        terminate(engine.proc, grace=30)  # dockerd stops the container and unmounts
        assert mounted() == []
        engine.proc = spawn(_dockerd_argv(engine), engine.log_path, cwd=engine.root)
        wait_until(lambda: other.docker("info").returncode == 0, timeout=60, what="dockerd again")
        assert other.docker("start", ctr).returncode == 0
        out = other.docker("exec", ctr, "cat", "/run/secrets/pw")
        assert out.stdout == stack.values["password"], out.stderr
        assert other.docker("rm", "-f", ctr).returncode == 0
        assert mounted() == []
    finally:
        other.docker("rm", "-f", ctr)
        other.docker("volume", "rm", "-f", vol)
        terminate(plugin, grace=10)
        sock.unlink(missing_ok=True)
        engine.close()
