"""Admission facts read from the engine's on-disk container config (no engine needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vaultside.errors import UpstreamUnavailableError
from vaultside.inject.docker_api import DockerEngine

CID = "f" * 64


def write_container(root: Path, config: dict[str, object], host: dict[str, object]) -> None:
    base = root / "containers" / CID
    base.mkdir(parents=True)
    (base / "config.v2.json").write_text(json.dumps(config))
    (base / "hostconfig.json").write_text(json.dumps(host))


async def test_facts_from_disk(tmp_path: Path) -> None:
    write_container(
        tmp_path,
        {
            "Name": "/web-1",
            "Image": "sha256:" + "a" * 64,
            "Config": {
                "User": "1000:2000",
                "Labels": {"io.vaultside.role": "web"},
                "Image": "app:1",
            },
            "MountPoints": {
                "/data": {"Source": "/srv/data", "Destination": "/data", "Type": "bind"},
            },
        },
        {"Privileged": False, "Memory": 1 << 26, "PidsLimit": 64, "ReadonlyRootfs": True},
    )
    facts = await DockerEngine("unix:///nonexistent.sock", data_root=tmp_path).facts(CID)
    assert (facts.name, facts.image, facts.image_id) == ("web-1", "app:1", "sha256:" + "a" * 64)
    assert facts.labels == {"io.vaultside.role": "web"} and facts.numeric_user == (1000, 2000)
    assert not facts.privileged and not facts.docker_socket_mounted and not facts.runs_as_root
    assert (facts.memory_limit, facts.pids_limit, facts.readonly_rootfs) == (1 << 26, 64, True)


@pytest.mark.parametrize(
    "mount",
    [
        {"Source": "/var/run/docker.sock", "Destination": "/sock", "Type": "bind"},
        {"Source": "/elsewhere/x", "Destination": "/run/docker.sock", "Type": "bind"},
        {"Source": "/tmp/vs-docker-1/docker.sock", "Destination": "/d", "Type": "bind"},
        {"Source": "/tmp/engine.sock", "Destination": "/d", "Type": "bind"},
    ],
)
async def test_docker_socket_detection(tmp_path: Path, mount: dict[str, str]) -> None:
    write_container(
        tmp_path,
        {"Config": {"User": ""}, "MountPoints": {mount["Destination"]: mount}},
        {"Privileged": True},
    )
    facts = await DockerEngine("unix:///tmp/engine.sock", data_root=tmp_path).facts(CID)
    assert facts.docker_socket_mounted and facts.privileged and facts.runs_as_root
    assert facts.memory_limit == 0 and facts.pids_limit is None


async def test_unreadable_config_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(UpstreamUnavailableError, match="must run on the engine's host"):
        await DockerEngine("unix:///nonexistent.sock", data_root=tmp_path).facts(CID)


def _on_disk(root: Path, cid: str, volume: str, *, running: bool) -> None:
    base = root / "containers" / cid
    base.mkdir(parents=True)
    mounts = {"/run/secrets": {"Type": "volume", "Name": volume, "Driver": "vs:latest"}}
    config = {
        "ID": cid,
        "Name": f"/{cid[:4]}",
        "State": {"Running": running},
        "Config": {"User": "1000", "Labels": {"io.vaultside.role": "web"}},
        "MountPoints": mounts,
    }
    (base / "config.v2.json").write_text(json.dumps(config))
    (base / "hostconfig.json").write_text(json.dumps({"ReadonlyRootfs": True}))


async def test_engine_state_lookup_finds_the_starting_container_without_the_api(
    tmp_path: Path,
) -> None:
    starting, running, other = "a" * 64, "b" * 64, "c" * 64
    _on_disk(tmp_path, starting, "vol1", running=False)
    _on_disk(tmp_path, running, "vol1", running=True)
    _on_disk(tmp_path, other, "vol2", running=False)
    (tmp_path / "containers" / "half-written").mkdir()
    engine = DockerEngine(None, data_root=tmp_path, api_lookup=False)
    (facts,) = await engine.containers_for_volume("vol1", "vaultside")
    assert facts.id == starting and facts.labels == {"io.vaultside.role": "web"}
    assert facts.readonly_rootfs
    (only,) = await engine.containers_for_volume("vol2", "vaultside")
    assert only.id == other
    assert await engine.containers_for_volume("unknown", "vaultside") == []


async def test_engine_state_lookup_has_no_api_and_says_so(tmp_path: Path) -> None:
    engine = DockerEngine(None, data_root=tmp_path, api_lookup=False)
    with pytest.raises(UpstreamUnavailableError, match="engine_state"):
        await engine.signal_container("a" * 64, "HUP")
    with pytest.raises(UpstreamUnavailableError, match="containers"):
        await engine.containers_for_volume("vol1", "vaultside")  # no containers dir
