"""``vaultside.wiring.plugin``: ``build_plugin`` settings checks, the address the embedded
plugin reaches its server on, and the refusals of ``plugin_component``."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaultside.clock import FakeClock
from vaultside.config.settings import Settings
from vaultside.errors import InvalidRequestError
from vaultside.inject.embedded import EmbeddedPlugin
from vaultside.wiring.plugin import build_plugin, plugin_component, server_api_env


def _engine_state(tmp_path: Path, **inject: object) -> Settings:
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
        build_plugin(_engine_state(tmp_path, admission=off))
    with pytest.raises(InvalidRequestError, match="image_findings"):
        build_plugin(_engine_state(tmp_path, docker_data_root=tmp_path))
    server, engine = build_plugin(_engine_state(tmp_path, docker_data_root=tmp_path, admission=off))
    assert not engine.api_lookup
    assert server.socket_path == tmp_path / "sock" / "vaultside.sock"


def _in_server(tmp_path: Path) -> Settings:
    (tmp_path / "roles.toml").write_text('[roles.web]\ntoken_file = "web.token"\n')
    return Settings(
        data_dir=tmp_path,
        inject={"plugin_in_server": True, "roles_file": "roles.toml",
                "admission": {"image_findings": "off"}},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("server", "inject", "addr"),
    [
        ({"listen": "127.0.0.1:8300"}, {}, "http://127.0.0.1:8300"),
        ({"listen": "0.0.0.0:8200"}, {}, "http://127.0.0.1:8200"),
        ({"listen": "[::]:8200"}, {}, "http://[::1]:8200"),
        ({"listen": ":8200", "tls_cert_file": "c.pem"}, {}, "https://127.0.0.1:8200"),
        ({"listen": "10.0.0.5:8200"}, {"server_addr": "https://vs.internal:8200"},
         "https://vs.internal:8200"),
    ],
)  # fmt: skip
def test_api_address_reaches_this_server(
    tmp_path: Path, server: dict[str, object], inject: dict[str, object], addr: str
) -> None:
    settings = Settings(data_dir=tmp_path, server=server, inject=inject)
    env = server_api_env(settings, {"VAULTSIDE_ADDR": "http://elsewhere", "VAULTSIDE_SOCKET": "x"})
    assert env["VAULTSIDE_ADDR"] == addr and "VAULTSIDE_SOCKET" not in env


def test_unix_socket_and_refusals(tmp_path: Path) -> None:
    sock = Settings(data_dir=tmp_path, server={"unix_socket": "api.sock"})
    env = server_api_env(sock, {})
    assert env["VAULTSIDE_SOCKET"] == str(tmp_path / "api.sock")
    with pytest.raises(InvalidRequestError, match="fixed server listen port"):
        server_api_env(Settings(data_dir=tmp_path, server={"listen": "127.0.0.1:0"}), {})
    with pytest.raises(InvalidRequestError, match="workers = 1"):
        plugin_component(
            _in_server(tmp_path).model_copy(update={"server": Settings().server.model_copy(
                update={"workers": 2})}),
            clock=FakeClock(), in_server=True,
        )  # fmt: skip
    with pytest.raises(InvalidRequestError, match="roles_file"):
        plugin_component(Settings(data_dir=tmp_path, inject={"plugin_in_server": True}),
                         clock=FakeClock(), in_server=True)  # fmt: skip


def test_the_plugin_command_resolves_through_the_configured_server(tmp_path: Path) -> None:
    """``vaultside plugin`` (not in a server): VAULTSIDE_ADDR as given, any number of workers."""
    settings = _in_server(tmp_path).model_copy(
        update={"server": Settings().server.model_copy(update={"workers": 4})}
    )
    env = {"VAULTSIDE_ADDR": "http://vs.example:8200", "VAULTSIDE_SOCKET": "/x.sock"}
    plugin = plugin_component(settings, clock=FakeClock(), in_server=False, env=env)
    assert isinstance(plugin, EmbeddedPlugin)
    assert plugin.env == env
    assert plugin.interval == settings.rotation.redeliver_interval
