"""The injection stack, built in one place: a real ``vaultside serve --dev``, secrets and role
tokens written through its API, ``vaultside plugin`` under a unique name against a dockerd,
and the sidecar's command line; also a server that brokers OpenBao (``broker_server``).

Used by the integration tests (the ``stack``/``sstack`` fixtures in ``conftest.py``) and by
``bench/bench_inject.py`` and ``bench/bench_rotation.py``, which add the repo root to
``sys.path`` and start their own engine with ``own_engine()``.

Nothing here skips or asserts: a call that fails raises (``RuntimeError``,
``ServiceUnavailable``), so callers decide what a failure means.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaultside.inject import tmpfs

from .services.docker_engine import DockerEngine, build_busybox_image
from .services.process import spawn, terminate, wait_until
from .services.vaultside_server import VaultsideServer, VaultsideServerFactory
from .services.wire import request

# Flags a container needs for the default admission rules (non-root, read-only, limits).
SAFE = ["--user", "1000:1000", "--read-only", "--memory", "64m", "--pids-limit", "64"]
PLUGIN_SOCKETS = Path("/run/docker/plugins")
# A policy that reads every secret under ``app/``.
READ_APP = [{"path": "secrets/app/*", "capabilities": ["read"]}]


def api(
    server: VaultsideServer,
    method: str,
    path: str,
    body: Any = None,
    token: str = "",
    *,
    timeout: float = 60,
) -> Any:
    """One JSON call to ``/v1/<path>`` with ``token`` (root by default); the decoded body
    (``{}`` when empty). An error status raises ``RuntimeError``."""
    reply = request(
        server.addr, method, f"/v1/{path}", token=token or server.root_token, body=body,
        headers={"Content-Type": "application/json"}, timeout=timeout,
    )  # fmt: skip
    if reply.status >= 400:
        raise RuntimeError(f"{method} /v1/{path}: {reply.status} {reply.body[:300]!r}")
    return reply.json_or({})


def make_token(
    server: VaultsideServer, policy: str, rules: list[dict[str, Any]], path: Path
) -> str:
    """Write policy ``policy`` = ``rules``, create a token with it, store it at ``path`` (0600)."""
    api(server, "PUT", f"sys/policies/{policy}", {"rules": rules})
    token: str = api(server, "POST", "auth/token/create", {"policies": [policy]})["auth"]["token"]
    path.write_text(token)
    path.chmod(0o600)
    return token


def write_roles(root: Path, roles: Mapping[str, Mapping[str, Any]]) -> Path:
    """``root/roles.toml`` for the plugin: ``{role: {"token_file": ..., "allow": [...]}}``."""
    lines = []
    for role, spec in roles.items():
        lines.append(f"[roles.{role}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in spec.items()]
        lines.append("")
    path = root / "roles.toml"
    path.write_text("\n".join(lines))
    return path


def broker_server(
    servers: VaultsideServerFactory, addr: str, token: str, token_file: Path, **env: object
) -> VaultsideServer:
    """A server brokering the OpenBao (or Vault) at ``addr`` as ``corp``, logging in with
    ``token`` (written to ``token_file``, 0600); ``env`` adds settings."""
    token_file.write_text(token)
    token_file.chmod(0o600)
    return servers(
        VAULTSIDE_BROKERS__corp__ADDRESS=addr,
        VAULTSIDE_BROKERS__corp__TOKEN_FILE=str(token_file),
        **env,
    )


@contextlib.contextmanager
def serving(root: Path) -> Iterator[VaultsideServer]:
    """A ``vaultside serve --dev`` with its data under ``root/srv``, stopped after the block."""
    factory = VaultsideServerFactory(root / "srv")
    try:
        yield factory()
    finally:
        factory.close()


@contextlib.contextmanager
def own_engine() -> Iterator[tuple[DockerEngine, str]]:
    """A dedicated dockerd and its busybox image tag, for scripts without pytest fixtures."""
    engine = DockerEngine.start()
    try:
        yield engine, build_busybox_image(engine)
    finally:
        engine.close()


@dataclass
class Stack:
    """Server + plugin + engine; ``values`` holds the secret values the caller generated."""

    engine: DockerEngine
    image: str
    server: VaultsideServer
    root: Path
    name: str
    plugin_env: dict[str, str]
    values: dict[str, str] = field(default_factory=dict)
    plugin: subprocess.Popen[bytes] | None = None
    volumes: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)

    @property
    def mount_root(self) -> Path:
        return self.root / "mounts" / self.name

    @property
    def plugin_data(self) -> Path:
        return self.root / "plugin"

    @property
    def plugin_log(self) -> Path:
        return self.root / "plugin.log"

    @property
    def socket(self) -> Path:
        return PLUGIN_SOCKETS / f"{self.name}.sock"

    def spawn_plugin(
        self, name: str = "", *, mount_root: Path | None = None, log: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """``vaultside plugin`` as ``name`` (this stack's by default) on this engine, with
        ``root/roles.toml``; not waited for."""
        argv = [
            sys.executable, "-m", "vaultside", "plugin", "--name", name or self.name,
            "--roles", str(self.root / "roles.toml"),
            "--mount-root", str(mount_root or self.root / "mounts"),
            "--docker-host", self.engine.base_url,
        ]  # fmt: skip
        return spawn(argv, log or self.plugin_log, env=self.plugin_env, cwd=self.root)

    def start_plugin(self) -> None:
        """Start ``vaultside plugin`` and wait for its socket."""
        self.socket.unlink(missing_ok=True)
        self.plugin = self.spawn_plugin()
        wait_until(
            self.socket.is_socket, timeout=30, what="vaultside plugin",
            proc=self.plugin, log_path=self.plugin_log,
        )  # fmt: skip

    def stop_plugin(self) -> None:
        terminate(self.plugin, grace=10)

    def volume(self, suffix: str = "") -> str:
        """A fresh volume name, removed by ``close()``."""
        name = f"v{secrets.token_hex(4)}{suffix}"
        self.volumes.append(name)
        return name

    def mount_arg(self, volume: str, opts: dict[str, str]) -> str:
        """``--mount`` value for ``volume`` of this plugin at ``/run/secrets``."""
        parts = ["type=volume", f"volume-driver={self.name}", f"src={volume}", "dst=/run/secrets"]
        parts += [f"volume-opt={k}={v}" for k, v in opts.items()]
        return ",".join(f'"{p}"' if "," in p else p for p in parts)

    def docker(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", *args], env=self.engine.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip

    def docker_ok(self, *args: str, timeout: float = 120) -> str:
        """``docker ARGS``' stdout, stripped; ``RuntimeError`` with its stderr if it fails."""
        res = self.docker(*args, timeout=timeout)
        if res.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args[:3])} failed: {res.stderr.strip()}")
        return res.stdout.strip()

    def run(self, volume: str, opts: dict[str, str], flags: list[str], cmd: str) -> Any:
        return self.docker(
            "run", "--rm", "--network", "none", *flags,
            "--mount", self.mount_arg(volume, opts), self.image, "sh", "-c", cmd,
        )  # fmt: skip

    def our_mounts(self) -> list[str]:
        text = Path("/proc/self/mountinfo").read_text()
        return [line for line in text.splitlines() if str(self.root / "mounts") in line]

    def close(self) -> None:
        """Remove our containers and volumes while the plugin still answers, then stop it."""
        # dockerd retries a gone plugin, so containers and volumes go first. Only the volumes
        # that exist, found by driver: removing a name the engine doesn't know makes it ask
        # every volume driver it has ever seen, and the plugins of earlier tests on this
        # session's engine are gone (each costs ~15 s of retries).
        with contextlib.suppress(subprocess.TimeoutExpired):
            if self.containers:
                self.docker("rm", "-f", *self.containers, timeout=120)
            listed = self.docker("volume", "ls", "-q", "--filter", f"driver={self.name}")
            ours = [v for v in listed.stdout.split() if v in self.volumes]
            if ours:
                self.docker("volume", "rm", "-f", *ours, timeout=120)
        self.stop_plugin()
        self.socket.unlink(missing_ok=True)


@contextlib.contextmanager
def plugin_stack(
    engine: DockerEngine,
    image: str,
    server: VaultsideServer,
    root: Path,
    *,
    prefix: str = "vaultside-test",
    env: Mapping[str, str] | None = None,
) -> Iterator[Stack]:
    """``vaultside plugin`` as ``<prefix>-<random>`` with ``root/roles.toml`` (write it first),
    data under ``root/plugin``, talking to ``server``; ``env`` adds ``VAULTSIDE_*`` settings."""
    plugin_env = {k: v for k, v in engine.env.items() if not k.startswith("VAULTSIDE_")}
    plugin_env |= {
        "VAULTSIDE_ADDR": server.addr,
        "VAULTSIDE_DATA_DIR": str(root / "plugin"),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    st = Stack(engine, image, server, root, f"{prefix}-{secrets.token_hex(4)}", plugin_env)
    try:
        st.start_plugin()
        yield st
    finally:
        st.close()


def sidecar_argv(
    server: VaultsideServer, token_file: Path, shared: Path, files: Mapping[str, str], *extra: str
) -> list[str]:
    """``vaultside sidecar`` rendering ``files`` (``{name: spec}``) into ``shared``."""
    argv = [
        sys.executable, "-m", "vaultside", "sidecar", "--dir", str(shared),
        "--addr", server.addr, "--token-file", str(token_file),
    ]  # fmt: skip
    for name, spec in files.items():
        argv += ["--secret", f"{name}={spec}"]
    return [*argv, *extra]


@contextlib.contextmanager
def shared_tmpfs(path: Path, *, uid: int = 1000, gid: int = 1000) -> Iterator[Path]:
    """A 1 MiB tmpfs at ``path`` (the sidecar's and the app's), wiped and unmounted after."""
    tmpfs.mount_tmpfs(path, size_bytes=1 << 20, uid=uid, gid=gid)
    try:
        yield path
    finally:
        tmpfs.wipe_and_unmount(path)
