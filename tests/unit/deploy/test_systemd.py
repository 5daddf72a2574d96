"""deploy/systemd/: hardening directives of each unit, checked as text and by systemd-analyze."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from .checks import DEPLOY, is_setting, parse_cli

UNITS = DEPLOY / "systemd"
SERVER = UNITS / "vaultside.service"
PLUGIN = UNITS / "vaultside-plugin.service"
# Each of these gives the service its own mount namespace (see vaultside-plugin.service).
MOUNT_NAMESPACE_OPTIONS = {
    "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "ReadWritePaths",
    "ReadOnlyPaths", "InaccessiblePaths", "TemporaryFileSystem", "BindPaths", "PrivateMounts",
    "ProtectKernelModules", "ProtectKernelLogs", "ProtectKernelTunables", "ProtectControlGroups",
    "ProtectProc", "ProcSubset", "MountFlags", "RootDirectory", "StateDirectory",
}  # fmt: skip


def directives(path: Path) -> dict[str, list[str]]:
    """``Key=Value`` lines of a unit, every value of a repeated key kept in order."""
    out: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def last(d: dict[str, list[str]], key: str) -> str:
    """The effective (last) value of ``key``."""
    return d[key][-1]


def env_names(d: dict[str, list[str]]) -> list[str]:
    """Names set by ``Environment=`` lines."""
    return [item.split("=", 1)[0] for line in d["Environment"] for item in shlex.split(line)]


@pytest.mark.parametrize("unit", [SERVER, PLUGIN], ids=lambda p: p.name)
def test_exec_start_and_environment_are_real(unit: Path) -> None:
    d = directives(unit)
    argv = shlex.split(last(d, "ExecStart"))
    assert argv[0] == "/opt/vaultside/bin/vaultside"
    parse_cli(argv[1:])
    for name in env_names(d):
        assert name == "PYTHONDONTWRITEBYTECODE" or is_setting(name), name


@pytest.mark.parametrize("unit", [SERVER, PLUGIN], ids=lambda p: p.name)
def test_ordering_has_no_cycle(unit: Path) -> None:
    d = directives(unit)
    after = {u for line in d.get("After", []) for u in line.split()}
    before = {u for line in d.get("Before", []) for u in line.split()}
    assert not after & before, after & before


def test_plugin_starts_before_docker_and_after_the_server() -> None:
    d = directives(PLUGIN)
    assert "docker.service" in last(d, "Before").split()
    assert "vaultside.service" in last(d, "After").split()


@pytest.mark.parametrize("unit", [SERVER, PLUGIN], ids=lambda p: p.name)
def test_common_hardening(unit: Path) -> None:
    d = directives(unit)
    assert last(d, "NoNewPrivileges") == "yes"
    assert last(d, "LimitCORE") == "0"
    assert last(d, "UMask") == "0077"
    assert last(d, "RestrictSUIDSGID") == "yes"
    assert last(d, "RestrictNamespaces") == "yes"
    assert last(d, "LockPersonality") == "yes"
    assert last(d, "SystemCallArchitectures") == "native"
    assert d["SystemCallFilter"][0].startswith("@system-service")
    assert any(v.startswith("~") for v in d["SystemCallFilter"])
    assert set(last(d, "RestrictAddressFamilies").split()) <= {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert {"MemoryMax", "TasksMax", "CPUQuota"} <= set(d)
    assert last(d, "AmbientCapabilities") == ""


def test_server_unit_is_fully_sandboxed() -> None:
    d = directives(SERVER)
    assert last(d, "User") == "vaultside" and last(d, "Group") == "vaultside"
    assert last(d, "ProtectSystem") == "strict"
    for key in ("ProtectHome", "PrivateTmp", "PrivateDevices", "PrivateUsers", "ProtectProc"):
        assert last(d, key) in {"yes", "invisible"}, key
    assert last(d, "CapabilityBoundingSet") == ""
    assert "~@privileged @resources" in d["SystemCallFilter"]
    assert last(d, "StateDirectory") == "vaultside"
    assert last(d, "StateDirectoryMode") == "0700"
    assert "VAULTSIDE_DATA_DIR=/var/lib/vaultside" in d["Environment"]


def test_plugin_unit_keeps_host_mount_namespace_and_few_capabilities() -> None:
    d = directives(PLUGIN)
    assert not MOUNT_NAMESPACE_OPTIONS & set(d), MOUNT_NAMESPACE_OPTIONS & set(d)
    caps = set(last(d, "CapabilityBoundingSet").split())
    assert caps == {"CAP_SYS_ADMIN", "CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE"}
    assert "@mount" in d["SystemCallFilter"][0]
    denied = " ".join(v for v in d["SystemCallFilter"] if v.startswith("~"))
    for group in ("@module", "@reboot", "@raw-io", "@debug", "@swap"):
        assert group in denied, group


_SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
_EXPOSURE = re.compile(r"Overall exposure level for \S+: ([0-9.]+)")


@pytest.mark.skipif(_SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize(
    ("unit", "ceiling"), [(SERVER, 2.0), (PLUGIN, 5.0)], ids=["server", "plugin"]
)
def test_systemd_analyze_security(unit: Path, ceiling: float) -> None:
    assert _SYSTEMD_ANALYZE is not None
    run = subprocess.run(
        [_SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    # systemd names every unknown key or bad value on stderr: a typo would silently weaken it
    assert run.stderr.strip() == "", run.stderr
    match = _EXPOSURE.search(run.stdout)
    assert match is not None, run.stdout[-500:]
    assert float(match.group(1)) <= ceiling, run.stdout
