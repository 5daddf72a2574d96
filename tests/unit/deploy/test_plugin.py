"""deploy/plugin/config.json: the managed Docker plugin's manifest (built by ``make plugin``).

The plugin itself is created and enabled on a real dockerd in
tests/integration/test_inject_managed_plugin.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from vaultside.config.settings import Settings

from .checks import DEPLOY, is_setting, parse_cli

CONFIG = DEPLOY / "plugin" / "config.json"
CLIENT_VARS = {"VAULTSIDE_CACERT"}
PROCESS_VARS = {"PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return json.loads(CONFIG.read_text())


def env(config: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in config["env"]}


def test_volume_driver_interface_and_entrypoint(config: dict[str, Any]) -> None:
    assert config["interface"] == {
        "types": ["docker.volumedriver/1.0"],
        "socket": "vaultside.sock",
    }
    exe, *args = config["entrypoint"]
    assert exe == "/opt/vaultside/bin/vaultside"
    assert parse_cli(args) == ["plugin"]
    # the socket the plugin creates (default socket dir + --name) is the one Docker expects
    assert args[args.index("--name") + 1] + ".sock" == config["interface"]["socket"]


def test_least_privilege(config: dict[str, Any]) -> None:
    linux = config["linux"]
    assert linux["capabilities"] == ["CAP_SYS_ADMIN"]  # tmpfs mount/umount; nothing else
    assert not linux.get("allowAllDevices") and not linux.get("devices")
    assert not config.get("ipchost") and not config.get("pidhost")
    for mount in config["mounts"]:
        assert "ro" in mount["options"], mount["name"]
        assert "docker.sock" not in mount["source"], mount["name"]  # no Docker socket
    assert env(config)["VAULTSIDE_INJECT__CONTAINER_LOOKUP"] == "engine_state"
    assert env(config)["VAULTSIDE_INJECT__ADMISSION__IMAGE_FINDINGS"] == "off"


def test_mounts_and_paths_line_up(config: dict[str, Any]) -> None:
    values = env(config)
    assert values["VAULTSIDE_INJECT__MOUNT_ROOT"] == config["propagatedMount"]
    mounts = {m["name"]: m for m in config["mounts"]}
    assert set(mounts) == {"config", "engine-state"}
    assert all(m["settable"] == ["source"] for m in mounts.values())
    roles = values["VAULTSIDE_INJECT__ROLES_FILE"]
    assert roles.startswith(mounts["config"]["destination"] + "/")
    data_root = values["VAULTSIDE_INJECT__DOCKER_DATA_ROOT"]
    assert mounts["engine-state"]["destination"] == f"{data_root}/containers"


def test_env_names_are_real_settings_and_valid_together(config: dict[str, Any]) -> None:
    values = env(config)
    for name in values:
        assert name in CLIENT_VARS | PROCESS_VARS or is_setting(name), name
    settable = {e["name"] for e in config["env"] if "value" in e.get("settable", [])}
    assert {"VAULTSIDE_ADDR", "VAULTSIDE_INJECT__ROLES_FILE"} <= settable
    fixed = {"VAULTSIDE_INJECT__CONTAINER_LOOKUP", "VAULTSIDE_INJECT__MOUNT_ROOT"}
    assert not fixed & settable
    settings_env = {k: v for k, v in values.items() if is_setting(k) and v}
    # the values the plugin process gets are valid settings
    got = Settings(**_nested(settings_env))
    assert got.inject.container_lookup == "engine_state"


def _nested(env_vars: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in env_vars.items():
        if name in {"VAULTSIDE_ADDR", "VAULTSIDE_TOKEN", "VAULTSIDE_TOKEN_FILE"}:
            continue
        *path, leaf = name.removeprefix("VAULTSIDE_").lower().split("__")
        node = out
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out
