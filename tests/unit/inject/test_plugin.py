"""The volume plugin protocol over a real unix socket."""

from __future__ import annotations

import socket
import stat
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from vaultside.clock import FakeClock
from vaultside.errors import ConflictError
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


def _stale_socket(path: Path) -> None:
    """A socket file nobody listens on (what a killed plugin leaves behind)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(path))


async def test_second_server_with_the_same_name_refuses(plugin) -> None:
    server, call = plugin
    inode = server.socket_path.stat().st_ino
    second = PluginServer(server.manager, name="vs-unit", socket_dir=server.socket_path.parent)
    with pytest.raises(ConflictError, match=r"another plugin is serving on .*vs-unit\.sock"):
        await second.start()
    await second.stop()
    assert server.socket_path.stat().st_ino == inode
    assert await call("Plugin.Activate") == {"Implements": ["VolumeDriver"]}


async def test_stale_socket_is_taken_over(plugin) -> None:
    server, _ = plugin
    await server.stop()
    _stale_socket(server.socket_path)
    await server.start()
    connector = aiohttp.UnixConnector(str(server.socket_path))
    async with (
        aiohttp.ClientSession(connector=connector) as s,
        s.post("http://plugin/Plugin.Activate") as resp,
    ):
        assert (await resp.json(content_type=None))["Implements"] == ["VolumeDriver"]


async def test_stop_leaves_a_socket_it_did_not_create(plugin) -> None:
    server, _ = plugin
    server.socket_path.unlink()
    _stale_socket(server.socket_path)  # someone else's socket now
    inode = server.socket_path.stat().st_ino
    await server.stop()
    assert server.socket_path.is_socket() and server.socket_path.stat().st_ino == inode
