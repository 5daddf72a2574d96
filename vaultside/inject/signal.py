"""Reload actions run after the sidecar re-renders: signal a process, run a command, or ask
Docker to signal a container."""

from __future__ import annotations

import asyncio
import os
import signal as _signal
from pathlib import Path
from typing import Protocol

from vaultside.errors import InvalidRequestError, UpstreamUnavailableError
from vaultside.inject.docker_api import DockerEngine


def parse_signal(name: str) -> _signal.Signals:
    """``HUP``, ``SIGHUP`` or a number → the signal."""
    text = name.strip().upper()
    if text.isdigit():
        try:
            return _signal.Signals(int(text))
        except ValueError as exc:
            raise InvalidRequestError(f"unknown signal {name[:16]!r}") from exc
    try:
        return _signal.Signals[text if text.startswith("SIG") else f"SIG{text}"]
    except KeyError as exc:
        raise InvalidRequestError(f"unknown signal {name[:16]!r}") from exc


class ReloadAction(Protocol):
    """Tells the application its files changed."""

    async def run(self) -> None:
        """Do it; ``UpstreamUnavailableError`` if it could not be done."""
        ...

    def describe(self) -> str:
        """A short description for logs."""
        ...


class SignalProcess:
    """Signal a process by pid or pid file (the sidecar shares the app's PID namespace)."""

    def __init__(
        self, sig: _signal.Signals, *, pid: int | None = None, pid_file: Path | None = None
    ) -> None:
        if (pid is None) == (pid_file is None):
            raise InvalidRequestError("give exactly one of a pid or a pid file")
        self.sig, self.pid, self.pid_file = sig, pid, pid_file

    async def run(self) -> None:
        pid = self.pid
        try:
            if pid is None and self.pid_file is not None:
                pid = int(self.pid_file.read_text(encoding="utf-8").strip())
            assert pid is not None
            os.kill(pid, self.sig)
        except (OSError, ValueError) as exc:
            raise UpstreamUnavailableError(f"cannot signal {self.describe()}: {exc}") from exc

    def describe(self) -> str:
        return f"{self.sig.name} to pid {self.pid if self.pid is not None else self.pid_file}"


class RunCommand:
    """Run a command (argv, no shell) and require exit status 0."""

    def __init__(self, argv: list[str], *, timeout: float = 30.0) -> None:
        if not argv:
            raise InvalidRequestError("reload command is empty")
        self.argv, self.timeout = argv, timeout

    async def run(self) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.DEVNULL
            )
            code = await asyncio.wait_for(proc.wait(), self.timeout)
        except (OSError, TimeoutError) as exc:
            raise UpstreamUnavailableError(f"reload command failed: {type(exc).__name__}") from exc
        if code != 0:
            raise UpstreamUnavailableError(f"reload command exited with status {code}")

    def describe(self) -> str:
        return f"command {self.argv[0]}"


class SignalContainer:
    """Ask the Docker engine to signal a container's main process."""

    def __init__(self, engine: DockerEngine, container: str, sig: _signal.Signals) -> None:
        self.engine, self.container, self.sig = engine, container, sig

    async def run(self) -> None:
        await self.engine.signal_container(self.container, self.sig.name)

    def describe(self) -> str:
        return f"{self.sig.name} to container {self.container[:64]}"
