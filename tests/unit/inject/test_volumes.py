"""VolumeManager: admission, resolve, tmpfs files, unmount, recovery — on real tmpfs mounts."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from vaultside.clock import FakeClock
from vaultside.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from vaultside.inject import tmpfs
from vaultside.inject.admission import AdmissionPolicy
from vaultside.inject.audit import InjectAuditLog
from vaultside.inject.roles import RoleBook, make_role
from vaultside.inject.state import PluginState
from vaultside.inject.volumes import VolumeManager

from .conftest import MemorySecrets, StaticContainers, safe_container

OPTS = {
    "secret.db_password": "kv:app/db#password",
    "template.db.url": "postgres://{{ kv:app/db#user }}:{{ kv:app/db#password | urlquote }}@db/app",
    "mode": "0440",
}


@pytest.fixture
def parts(tmp_path: Path, mount_root: Path):
    secrets = MemorySecrets()
    secrets.put("app/db", user="app", password="pa:ss")
    containers = StaticContainers({"vol1": [safe_container()]})
    return secrets, containers, tmp_path, mount_root


def make_manager(parts, roles: RoleBook | None = None, policy: AdmissionPolicy | None = None):
    secrets, containers, tmp_path, mount_root = parts
    return VolumeManager(
        state=PluginState(tmp_path / "state.json"),
        mount_root=mount_root,
        containers=containers,
        roles=roles or RoleBook([make_role("web")]),
        admission=policy or AdmissionPolicy(),
        sources=lambda role: secrets,
        audit=InjectAuditLog(tmp_path / "audit.log", clock=FakeClock()),
        driver="vaultside-test",
        clock=FakeClock(),
    )


def audit_records(tmp_path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in (tmp_path / "audit.log").read_text().splitlines()]


async def test_mount_writes_files_then_unmount_wipes(parts) -> None:
    _secrets, _, tmp_path, mount_root = parts
    vm = make_manager(parts)
    await vm.create("vol1", dict(OPTS))
    point = Path(await vm.mount("vol1", "m1"))
    assert point == mount_root / "vol1" and tmpfs.is_tmpfs(point)
    assert (point / "db_password").read_bytes() == b"pa:ss"
    assert (point / "db.url").read_bytes() == b"postgres://app:pa%3Ass@db/app"
    st = (point / "db_password").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o440)
    root = point.stat()  # group-readable files: the group may enter the directory too
    assert (root.st_uid, root.st_gid, stat.S_IMODE(root.st_mode)) == (1000, 1000, 0o550)
    assert os.statvfs(point).f_flag & os.ST_RDONLY  # nobody but the plugin writes there
    state_text = (tmp_path / "state.json").read_text()
    assert "pa:ss" not in state_text and "kv:app/db#password" in state_text
    rec = audit_records(tmp_path)[-1]
    assert rec["status"] == 200 and rec["operation"] == "inject.admit"
    assert "pa:ss" not in (tmp_path / "audit.log").read_text()

    await vm.unmount("vol1", "m1")
    assert not point.exists() and not tmpfs.is_mountpoint(point)
    assert vm.get("vol1").mountpoint == ""


async def test_shared_volume_unmounts_after_last_user(parts) -> None:
    vm = make_manager(parts)
    await vm.create("vol1", dict(OPTS))
    point = Path(await vm.mount("vol1", "m1"))
    assert Path(await vm.mount("vol1", "m2")) == point
    await vm.unmount("vol1", "m1")
    assert tmpfs.is_mountpoint(point)
    await vm.unmount("vol1", "m2")
    assert not tmpfs.is_mountpoint(point)


async def test_restart_recovers_mounts(parts) -> None:
    vm = make_manager(parts)
    await vm.create("vol1", dict(OPTS))
    point = Path(await vm.mount("vol1", "m1"))
    again = make_manager(parts)  # a new process: same state file, same mounts
    await again.recover()
    assert again.get("vol1").mountpoint == str(point) and tmpfs.is_mountpoint(point)
    await again.unmount("vol1", "m1")
    assert not tmpfs.is_mountpoint(point)


async def test_recover_forgets_lost_mounts_and_unmounts_strays(parts) -> None:
    _, _, _tmp_path, mount_root = parts
    vm = make_manager(parts)
    await vm.create("vol1", dict(OPTS))
    point = Path(await vm.mount("vol1", "m1"))
    tmpfs.wipe_and_unmount(point)  # e.g. the host rebooted
    stray = mount_root / "stray"
    tmpfs.mount_tmpfs(stray, size_bytes=8192, uid=0, gid=0)
    again = make_manager(parts)
    await again.recover()
    assert again.get("vol1").mountpoint == "" and again.get("vol1").mount_ids == []
    assert not tmpfs.is_mountpoint(stray)


async def test_admission_denial_mounts_nothing_and_is_audited(parts) -> None:
    secrets, containers, tmp_path, mount_root = parts
    containers.by_volume["vol1"] = [safe_container(privileged=True)]
    vm = make_manager(parts)
    await vm.create("vol1", dict(OPTS))
    with pytest.raises(PermissionDeniedError, match=r"admission denied .*privileged"):
        await vm.mount("vol1", "m1")
    assert list(mount_root.iterdir()) == [] and secrets.resolve_calls == 0
    rec = audit_records(tmp_path)[-1]
    assert rec["status"] == 403 and "privileged" in str(rec["error"])
    assert rec["extra"]["privileged"] == "deny:hit"  # type: ignore[index]


async def test_role_outside_its_allow_list_is_refused(parts) -> None:
    secrets, _, _, mount_root = parts
    roles = RoleBook([make_role("web", allow=("kv:app/web/**",))])
    vm = make_manager(parts, roles=roles)
    await vm.create("vol1", dict(OPTS))
    with pytest.raises(PermissionDeniedError, match="may not receive kv:app/db#password"):
        await vm.mount("vol1", "m1")
    assert list(mount_root.iterdir()) == [] and secrets.resolve_calls == 0


async def test_server_denial_names_the_option(parts) -> None:
    secrets, _, _, mount_root = parts
    secrets.denied.add("app/db")
    vm = make_manager(parts)
    await vm.create("vol1", dict(OPTS))
    with pytest.raises(PermissionDeniedError, match=r"secret.db_password: kv:app/db#password"):
        await vm.mount("vol1", "m1")
    assert list(mount_root.iterdir()) == []


async def test_unknown_secret_names_the_option_and_leaves_nothing_mounted(parts) -> None:
    _, _, _, mount_root = parts
    vm = make_manager(parts)
    await vm.create("vol1", {"secret.a": "kv:app/db#user", "secret.b": "kv:app/nope#x"})
    with pytest.raises(NotFoundError, match=r"secret.b: kv:app/nope#x"):
        await vm.mount("vol1", "m1")
    assert list(mount_root.iterdir()) == []


async def test_unidentified_container_is_refused(parts) -> None:
    _, containers, _, _ = parts
    containers.by_volume.clear()
    vm = make_manager(parts)
    await vm.create("vol1", dict(OPTS))
    with pytest.raises(PermissionDeniedError, match="cannot identify the container"):
        await vm.mount("vol1", "m1")


async def test_create_validation_and_lifecycle(parts) -> None:
    vm = make_manager(parts)
    with pytest.raises(InvalidRequestError, match=r"'secret\.\.\./x'"):
        await vm.create("vol1", {"secret.../x": "kv:a#b"})
    with pytest.raises(NotFoundError):
        vm.get("vol1")
    await vm.create("vol1", dict(OPTS))
    await vm.create("vol1", dict(OPTS))  # idempotent
    with pytest.raises(ConflictError):
        await vm.create("vol1", {"secret.x": "kv:a#b"})
    await vm.mount("vol1", "m1")
    with pytest.raises(ConflictError, match="in use"):
        await vm.remove("vol1")
    await vm.unmount("vol1", "m1")
    await vm.remove("vol1")
    assert vm.list() == []


async def test_vanished_mount_is_mounted_again(parts) -> None:
    vm = make_manager(parts)
    await vm.create("vol1", dict(OPTS))
    point = Path(await vm.mount("vol1", "m1"))
    tmpfs.wipe_and_unmount(point)  # someone unmounted it behind the plugin's back
    assert Path(await vm.mount("vol1", "m2")) == point
    assert tmpfs.is_tmpfs(point) and (point / "db_password").read_bytes() == b"pa:ss"
    await vm.unmount("vol1", "m1")
    await vm.unmount("vol1", "m2")
    assert not tmpfs.is_mountpoint(point)
