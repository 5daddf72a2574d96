"""Listening unix sockets whose final mode is set before anyone can connect.

``bind_unix`` binds, chmods, and only then listens: between ``bind`` and ``listen`` a client
cannot connect, so there is no window in which the socket is reachable with the umask's
default mode. A stale socket file at the path is replaced; any other file there is an error
(``OSError`` from ``bind``).
"""

from __future__ import annotations

import contextlib
import socket
import stat
from pathlib import Path


def remove_stale_socket(path: Path) -> None:
    """Delete ``path`` if it is a socket (left by a previous run); anything else stays."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()


def bind_unix(path: Path, mode: int, backlog: int = 1024) -> socket.socket:
    """A listening unix socket at ``path`` with permission bits ``mode``."""
    remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        # SECURITY: the final mode is in place before listen(): no connectable window.
        path.chmod(mode)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock
