"""Process plumbing shared by the service modules: ports, waiting, logs, clean shutdown."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1


class ServiceUnavailable(Exception):
    """A service could not be started here; the message says why (with its log tail)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_on_free_port(service: Any, attempts: int = 3) -> None:
    """``service.start()``, moving ``service.port`` to a new free port if another process took it.

    ``free_port`` can only say a port *was* free: with several test sessions on one host, a
    port can be taken between choosing it and the service binding it.
    """
    for attempt in range(attempts):
        try:
            service.start()
            return
        except ServiceUnavailable as exc:
            if "address already in use" not in str(exc).lower() or attempt + 1 == attempts:
                raise
            service.port = free_port()


def short_tempdir(prefix: str) -> Path:
    """A fresh temp dir with a short path (unix socket paths are limited to 107 bytes)."""
    return Path(tempfile.mkdtemp(prefix=f"vs-{prefix}-", dir="/tmp"))


def log_tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _die_with_parent() -> None:
    # If pytest is killed hard, the service gets SIGTERM instead of running forever.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    argv: list[str],
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdout+stderr appended to ``log_path``.

    The child dies with this process when it was started from the main thread (the kernel
    ties the parent-death signal to the spawning thread, so other threads do not set it).
    """
    preexec = _die_with_parent if threading.current_thread() is threading.main_thread() else None
    with log_path.open("ab") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            user=user,
            group=user,
            extra_groups=[] if user else None,
            preexec_fn=preexec,
        )


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> None:
    """Poll ``check`` until it is true; ``ServiceUnavailable`` on timeout or if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:
            pass  # not ready yet: any error means "poll again"
        exited = proc is not None and proc.poll() is not None
        if exited or time.monotonic() > deadline:
            reason = f"exited with {proc.returncode}" if exited and proc else f"{timeout:.0f}s"
            tail = log_tail(log_path) if log_path else ""
            raise ServiceUnavailable(f"{what} not ready ({reason}); log tail:\n{tail}")
        time.sleep(0.1)


def terminate(
    proc: subprocess.Popen[bytes] | None, *, sig: int = signal.SIGTERM, grace: float = 20
) -> None:
    """Stop ``proc`` with ``sig``; SIGKILL after ``grace`` seconds. Safe to call twice."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def unmount_under(root: Path) -> None:
    """Lazily unmount every mount point below ``root``, deepest first."""
    prefix = str(root.resolve()) + "/"
    try:
        with open("/proc/self/mounts") as f:
            points = [line.split()[1] for line in f]
    except OSError:
        return
    # /proc/mounts escapes spaces etc. as octal; our temp paths contain none.
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def remove_tree(root: Path) -> None:
    """Unmount what is left under ``root`` and delete it."""
    if os.geteuid() == 0:
        unmount_under(root)
    shutil.rmtree(root, ignore_errors=True)
