"""The volume plugin as a ``serve`` component: its lifecycle (wiring: tests/unit/wiring)."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.stores import with_key
from vaultside.clock import FakeClock
from vaultside.config.settings import Settings
from vaultside.inject.embedded import EmbeddedPlugin
from vaultside.wiring.server import build_services


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


async def test_component_serves_the_plugin_socket_until_closed(tmp_path: Path) -> None:
    settings = with_key(_settings(tmp_path))
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
