"""tmpfs: mount size-limited, check with statfs, write files atomically, wipe and unmount.

Plugin volumes are read-only (the superblock: ``set_readonly``) except while the plugin
writes into them (``writable``).

These are blocking syscalls (fast, no I/O to disk); async callers run them with
``asyncio.to_thread``. Linux only.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import secrets as _random
from collections.abc import Iterator
from pathlib import Path

from vaultside.errors import InternalError, InvalidRequestError

TMPFS_MAGIC = 0x01021994
RAMFS_MAGIC = 0x858458F6
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MNT_DETACH = 0x2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def fs_type(path: Path) -> int:
    """The statfs ``f_type`` magic of the filesystem holding ``path``."""
    # struct statfs starts with f_type (a long on every Linux ABI we run on); 256 bytes is
    # larger than the whole struct.
    buf = ctypes.create_string_buffer(256)
    if _libc.statfs(os.fsencode(path), buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(path))
    return int(ctypes.c_long.from_buffer(buf).value) & 0xFFFFFFFF


def is_tmpfs(path: Path) -> bool:
    """True if ``path`` lives on tmpfs (or ramfs): memory only, never written to disk."""
    return fs_type(path) in (TMPFS_MAGIC, RAMFS_MAGIC)


def require_tmpfs(path: Path) -> None:
    """Raise ``InvalidRequestError`` unless ``path`` is on tmpfs."""
    # SECURITY: plaintext may only ever land on memory-backed filesystems.
    try:
        ok = is_tmpfs(path)
    except OSError as exc:
        raise InvalidRequestError(f"cannot statfs {path}: {exc.strerror}") from exc
    if not ok:
        raise InvalidRequestError(
            f"{path} is not on tmpfs (statfs type 0x{fs_type(path):x}); refusing to write secrets "
            "there (mount a tmpfs, or override explicitly)"
        )


def is_mountpoint(path: Path) -> bool:
    """True if ``path`` is listed as a mount point in this mount namespace."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            fields = line.split(" ")
            if len(fields) > 4 and _unescape(fields[4]) == target:
                return True
    return False


def _unescape(field: str) -> str:
    return (
        field.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
    )


def dir_mode_for(file_mode: int) -> int:
    """The tmpfs root's mode for files of ``file_mode``: r-x for whoever may read them.

    The owner always gets r-x (never w: only the plugin, as root, writes); the group gets r-x
    when the files are group-readable, others likewise. Without it a ``mode=0440`` file
    could not be reached by its group (the directory would be 0500).
    """
    mode = 0o500
    if file_mode & 0o040:
        mode |= 0o050
    if file_mode & 0o004:
        mode |= 0o005
    return mode


def mount_tmpfs(
    target: Path, *, size_bytes: int, uid: int, gid: int, dir_mode: int = 0o500
) -> None:
    """Mount a fresh tmpfs (nosuid, nodev, noexec, size-limited) on ``target``, its root
    directory owned ``uid:gid`` with ``dir_mode`` (see ``dir_mode_for``)."""
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = f"size={size_bytes},mode={dir_mode:o},uid={uid},gid={gid}".encode()
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    if _libc.mount(b"vaultside", os.fsencode(target), b"tmpfs", flags, data) != 0:
        err = ctypes.get_errno()
        raise InternalError(f"mount tmpfs on {target} failed: {os.strerror(err)}")
    require_tmpfs(target)


def set_readonly(target: Path, readonly: bool) -> None:
    """Make the tmpfs mounted on ``target`` read-only (or writable again) for every mount of it.

    A remount without ``MS_BIND`` changes the superblock, so it applies to each bind of this
    tmpfs in every container, whatever their own per-mount flags say.
    """
    # SECURITY: between writes the tmpfs is read-only for everyone: no container (not even a
    # root one with a rw bind) can add, replace or chmod anything on it. That is what makes a
    # ``:ro`` bind safe although runc's remount drops its nosuid,nodev,noexec (see
    # docs/injection.md).
    flags = MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC | (MS_RDONLY if readonly else 0)
    if _libc.mount(None, os.fsencode(target), None, flags, None) != 0:
        err = ctypes.get_errno()
        raise InternalError(
            f"remount {target} {'read-only' if readonly else 'writable'} failed: {os.strerror(err)}"
        )


@contextlib.contextmanager
def writable(target: Path) -> Iterator[None]:
    """Writable for the duration of the block (the caller holds the volume's lock), then
    read-only again."""
    set_readonly(target, False)
    try:
        yield
    finally:
        set_readonly(target, True)


def write_atomic(directory: Path, name: str, data: bytes, *, uid: int, gid: int, mode: int) -> None:
    """Write ``directory/name`` via a temp file + rename, owned ``uid:gid`` with ``mode``."""
    # SECURITY: the caller validated ``name`` (one plain segment); double-check here since
    # this is the line where a name becomes a path.
    if "/" in name or name in ("", ".", ".."):
        raise InvalidRequestError(f"bad file name {name[:40]!r}")
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    tmp = f".{name}.{_random.token_hex(6)}.tmp"
    try:
        # SECURITY: create private (0600, O_EXCL, no symlink follow), set owner and final
        # mode before any byte is written, then rename over the old file atomically.
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd
        )
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    finally:
        os.close(dir_fd)


def wipe_dir(directory: Path) -> int:
    """Overwrite every regular file in ``directory`` with zeros and delete it; returns count."""
    count = 0
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0
    for name in names:
        path = directory / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        except OSError:
            path.unlink(missing_ok=True)
            continue
        try:
            size = os.fstat(fd).st_size
            # SECURITY: zero the pages before freeing them, so nothing lingers in memory dumps.
            os.write(fd, b"\0" * size)
        finally:
            os.close(fd)
        path.unlink(missing_ok=True)
        count += 1
    return count


def unmount(target: Path) -> None:
    """Unmount ``target`` (lazily if busy) and remove the empty directory."""
    if _libc.umount2(os.fsencode(target), 0) != 0:
        err = ctypes.get_errno()
        if err == errno.EBUSY:
            _libc.umount2(os.fsencode(target), MNT_DETACH)
        elif err not in (errno.EINVAL, errno.ENOENT):
            raise InternalError(f"unmount {target} failed: {os.strerror(err)}")
    with contextlib.suppress(OSError):
        target.rmdir()


def wipe_and_unmount(target: Path) -> None:
    """Wipe the files of a tmpfs mount, unmount it and remove the mountpoint directory."""
    if target.exists() and is_mountpoint(target):
        set_readonly(target, False)
        wipe_dir(target)
        unmount(target)
    else:
        with contextlib.suppress(OSError):
            target.rmdir()
