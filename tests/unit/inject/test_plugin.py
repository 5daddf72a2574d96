"""The volume plugin protocol over a real unix socket."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from vaultside.clock import FakeClock
from vaultside.inject.admission import AdmissionPolicy
from vaultside.inject.audit import InjectAuditLog
from vaultside.inject.plugin import PluginServer
from vaultside.inject.roles import RoleBook, make_role
from vaultside.inject.state import PluginState
from vaultside.inject.volumes import VolumeManager

from .conftest import MemorySecrets, StaticContainers, safe_container


@pytest.fixture
async def plugin(tmp_path: Path, mount_root: Path):
    secrets = MemorySecrets()
    secrets.put("app/db", password="s3cret")
    vm = VolumeManager(
        state=PluginState(tmp_path / "state.json"),
        mount_root=mount_root,
        containers=StaticContainers({"v1": [safe_container()]}),
        roles=RoleBook([make_role("web")]),
        admission=AdmissionPolicy(),
        sources=lambda role: secrets,
        audit=InjectAuditLog(tmp_path / "audit.log", clock=FakeClock()),
        driver="vs-unit",
        clock=FakeClock(),
    )
    server = PluginServer(vm, name="vs-unit", socket_dir=tmp_path / "plugins")
    await server.start()
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(str(server.socket_path))) as s:

        async def call(method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
            async with s.post(f"http://plugin/{method}", json=body or {}) as resp:
                assert resp.status == 200
                result: dict[str, Any] = await resp.json(content_type=None)
                return result

        yield server, call
    await server.stop()


async def test_protocol_round_trip(plugin) -> None:
    server, call = plugin
    assert stat.S_IMODE(server.socket_path.stat().st_mode) == 0o600
    assert await call("Plugin.Activate") == {"Implements": ["VolumeDriver"]}
    assert await call("VolumeDriver.Capabilities") == {"Capabilities": {"Scope": "local"}}
    assert "no such volume" in (await call("VolumeDriver.Get", {"Name": "v1"}))["Err"]
    opts = {"secret.pw": "kv:app/db#password"}
    assert await call("VolumeDriver.Create", {"Name": "v1", "Opts": opts}) == {"Err": ""}
    got = await call("VolumeDriver.Get", {"Name": "v1"})
    assert got["Volume"]["Name"] == "v1" and got["Err"] == ""
    mounted = await call("VolumeDriver.Mount", {"Name": "v1", "ID": "abc"})
    assert mounted["Err"] == "" and Path(mounted["Mountpoint"], "pw").read_text() == "s3cret"
    assert (await call("VolumeDriver.Path", {"Name": "v1"}))["Mountpoint"] == mounted["Mountpoint"]
    listed = await call("VolumeDriver.List")
    assert listed["Volumes"] == [{"Name": "v1", "Mountpoint": mounted["Mountpoint"]}]
    assert await call("VolumeDriver.Unmount", {"Name": "v1", "ID": "abc"}) == {"Err": ""}
    assert not Path(mounted["Mountpoint"]).exists()
    assert await call("VolumeDriver.Remove", {"Name": "v1"}) == {"Err": ""}


async def test_bad_options_error_names_option(plugin) -> None:
    _, call = plugin
    bad = {"secret.pw": "kv:app/db#password", "mode": "0777x"}
    err = (await call("VolumeDriver.Create", {"Name": "v1", "Opts": bad}))["Err"]
    assert err.startswith("vaultside: volume option 'mode'")
    assert (await call("VolumeDriver.List"))["Volumes"] == []


async def test_mount_error_is_reported_not_raised(plugin) -> None:
    _, call = plugin
    await call("VolumeDriver.Create", {"Name": "v1", "Opts": {"secret.x": "kv:app/none#x"}})
    err = (await call("VolumeDriver.Mount", {"Name": "v1", "ID": "m"}))["Err"]
    assert "secret.x: kv:app/none#x" in err and "not found" in err


async def test_stop_removes_socket(plugin) -> None:
    server, _ = plugin
    await server.stop()
    assert not server.socket_path.exists()
