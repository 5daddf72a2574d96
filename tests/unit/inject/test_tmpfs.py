"""tmpfs: statfs check, atomic owned writes, wipe and unmount (mounting needs root)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from vaultside.errors import InvalidRequestError
from vaultside.inject import tmpfs


def test_disk_directory_is_not_tmpfs(tmp_path: Path) -> None:
    assert tmpfs.fs_type(tmp_path) != tmpfs.TMPFS_MAGIC or pytest.skip("tmp_path is on tmpfs")
    with pytest.raises(InvalidRequestError, match="not on tmpfs"):
        tmpfs.require_tmpfs(tmp_path)


def test_write_atomic_sets_owner_and_mode(tmp_path: Path) -> None:
    uid, gid = (1234, 2345) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    tmpfs.write_atomic(tmp_path, "f", b"one", uid=uid, gid=gid, mode=0o440)
    tmpfs.write_atomic(tmp_path, "f", b"two", uid=uid, gid=gid, mode=0o440)
    st = (tmp_path / "f").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, gid, 0o440)
    assert (tmp_path / "f").read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["f"]  # no temp files left behind


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ""])
def test_write_atomic_refuses_path_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidRequestError):
        tmpfs.write_atomic(tmp_path, name, b"x", uid=os.getuid(), gid=os.getgid(), mode=0o400)


def test_write_atomic_does_not_follow_symlinks(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").symlink_to(victim)
    tmpfs.write_atomic(tmp_path / "d", "f", b"new", uid=os.getuid(), gid=os.getgid(), mode=0o400)
    assert victim.read_bytes() == b"keep"
    assert not (tmp_path / "d" / "f").is_symlink()


def test_mount_write_wipe_unmount(mount_root: Path) -> None:
    target = mount_root / "vol"
    tmpfs.mount_tmpfs(target, size_bytes=65536, uid=1000, gid=1000)
    try:
        assert tmpfs.is_tmpfs(target) and tmpfs.is_mountpoint(target)
        st = target.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (1000, 0o500)
        opts = _mount_options(target)
        assert {"nosuid", "nodev", "noexec"} <= opts and "size=64k" in opts
        tmpfs.write_atomic(target, "s", b"x" * 1000, uid=1000, gid=1000, mode=0o400)
        with pytest.raises(OSError):  # the size limit holds
            tmpfs.write_atomic(target, "big", b"x" * 200_000, uid=0, gid=0, mode=0o400)
    finally:
        tmpfs.wipe_and_unmount(target)
    assert not target.exists() and not tmpfs.is_mountpoint(target)


def _mount_options(target: Path) -> set[str]:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[1] == str(target):
            return set(fields[3].split(","))
    raise AssertionError("not mounted")


@pytest.mark.parametrize(
    ("file_mode", "dir_mode"),
    [(0o400, 0o500), (0o600, 0o500), (0o440, 0o550), (0o640, 0o550), (0o660, 0o550),
     (0o404, 0o505), (0o444, 0o555), (0o420, 0o500)],
)  # fmt: skip
def test_dir_mode_follows_who_may_read_the_files(file_mode: int, dir_mode: int) -> None:
    assert tmpfs.dir_mode_for(file_mode) == dir_mode


def test_readonly_between_writes(mount_root: Path) -> None:
    target = mount_root / "vol"
    tmpfs.mount_tmpfs(target, size_bytes=65536, uid=1000, gid=1000)
    try:
        with tmpfs.writable(target):
            tmpfs.write_atomic(target, "s", b"one", uid=1000, gid=1000, mode=0o400)
        assert os.statvfs(target).f_flag & os.ST_RDONLY
        with pytest.raises(OSError, match="Read-only file system"):
            tmpfs.write_atomic(target, "t", b"x", uid=1000, gid=1000, mode=0o400)
        with pytest.raises(OSError, match="Read-only file system"):
            os.chmod(target, 0o700)  # even root cannot change anything now
        assert {"nosuid", "nodev", "noexec", "size=64k"} <= _mount_options(target)
        with tmpfs.writable(target):
            tmpfs.write_atomic(target, "s", b"two", uid=1000, gid=1000, mode=0o400)
        assert (target / "s").read_bytes() == b"two" and os.statvfs(target).f_flag & os.ST_RDONLY
    finally:
        tmpfs.wipe_and_unmount(target)  # wipes although read-only
    assert not target.exists()
