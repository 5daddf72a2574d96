"""The volume plugin as a ``serve`` component: address derivation, refusals, lifecycle."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from vaultside.clock import FakeClock
from vaultside.config.settings import Settings
from vaultside.crypto.seal import init_key_file
from vaultside.errors import InvalidRequestError
from vaultside.inject.embedded import EmbeddedPlugin, server_api_env
from vaultside.wiring import build_services


def _settings(tmp_path: Path, **inject: object) -> Settings:
    (tmp_path / "roles.toml").write_text('[roles.web]\ntoken_file = "web.token"\n')
    return Settings(
        data_dir=tmp_path,
        inject={
            "plugin_in_server": True,
            "roles_file": "roles.toml",
            "plugin_name": "vs-unit",
            "plugin_socket_dir": str(tmp_path / "plugins"),
            "mount_root": str(tmp_path / "mounts"),
            "admission": {"image_findings": "off"},
            **inject,
        },
    )


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
        EmbeddedPlugin(
            _settings(tmp_path).model_copy(update={"server": Settings().server.model_copy(
                update={"workers": 2})}),
            clock=FakeClock(),
        )  # fmt: skip
    with pytest.raises(InvalidRequestError, match="roles_file"):
        EmbeddedPlugin(Settings(data_dir=tmp_path, inject={"plugin_in_server": True}),
                       clock=FakeClock())  # fmt: skip


async def test_component_serves_the_plugin_socket_until_closed(tmp_path: Path) -> None:
    init_key_file(tmp_path / "vaultside.key")
    settings = _settings(tmp_path)
    services = build_services(settings, clock=FakeClock())
    (plugin,) = [c for c in services.components if isinstance(c, EmbeddedPlugin)]
    assert plugin.env["VAULTSIDE_ADDR"] == "http://127.0.0.1:8200"
    assert services.rotation is not None
    assert plugin.delivered in services.rotation.engine.hooks  # wiring connects re-delivery
    assert not [
        c for c in build_services(Settings(data_dir=tmp_path)).components
        if isinstance(c, EmbeddedPlugin)
    ]  # fmt: skip
    await services.open()
    await services.barrier.unseal()
    await services.start_components()
    socket = tmp_path / "plugins" / "vs-unit.sock"
    try:
        assert socket.is_socket() and oct(socket.stat().st_mode & 0o777) == "0o600"
        assert plugin.refresher is not None and plugin.refresher.interval == 0.5
        connector = aiohttp.UnixConnector(path=str(socket))
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.post("http://plugin/Plugin.Activate") as resp:
                assert resp.status == 200
                assert await resp.json(content_type=None) == {"Implements": ["VolumeDriver"]}
            async with session.post("http://plugin/VolumeDriver.List", json={}) as resp:
                assert (await resp.json(content_type=None))["Volumes"] == []
    finally:
        await services.close()
    assert not socket.exists()
    await plugin.close()  # idempotent
