"""``build_plugin``: the managed plugin's settings (``container_lookup = engine_state``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaultside.config.settings import Settings
from vaultside.errors import InvalidRequestError
from vaultside.inject.runtime import build_plugin


def _settings(tmp_path: Path, **inject: object) -> Settings:
    roles = tmp_path / "roles.toml"
    roles.write_text("[roles.web]\n")
    return Settings(
        data_dir=tmp_path,
        inject={
            "roles_file": roles,
            "container_lookup": "engine_state",
            "plugin_socket_dir": tmp_path / "sock",
            "mount_root": tmp_path / "mnt",
            **inject,
        },
    )


def test_engine_state_needs_the_data_root_and_no_image_scans(tmp_path: Path) -> None:
    off = {"image_findings": "off"}
    with pytest.raises(InvalidRequestError, match="docker_data_root"):
        build_plugin(_settings(tmp_path, admission=off))
    with pytest.raises(InvalidRequestError, match="image_findings"):
        build_plugin(_settings(tmp_path, docker_data_root=tmp_path))
    server, engine = build_plugin(_settings(tmp_path, docker_data_root=tmp_path, admission=off))
    assert not engine.api_lookup
    assert server.socket_path == tmp_path / "sock" / "vaultside.sock"
