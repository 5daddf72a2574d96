"""Reload actions against real processes."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from vaultside.errors import InvalidRequestError, UpstreamUnavailableError
from vaultside.inject.signal import RunCommand, SignalProcess, parse_signal


@pytest.mark.parametrize(("text", "sig"), [("HUP", signal.SIGHUP), ("sigusr1", signal.SIGUSR1),
                                           ("15", signal.SIGTERM)])  # fmt: skip
def test_parse_signal(text: str, sig: signal.Signals) -> None:
    assert parse_signal(text) is sig


@pytest.mark.parametrize("text", ["NOPE", "999", ""])
def test_parse_signal_rejects(text: str) -> None:
    with pytest.raises(InvalidRequestError):
        parse_signal(text)


async def test_signal_process_by_pid_file(tmp_path: Path) -> None:
    marker = tmp_path / "got"
    code = (
        "import signal, sys, time, pathlib\n"
        f"out = pathlib.Path({str(marker)!r})\n"
        "signal.signal(signal.SIGHUP, lambda *a: (out.write_text('hup'), sys.exit(0)))\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and await proc.stdout.readline() == b"ready\n"
        pid_file = tmp_path / "app.pid"
        pid_file.write_text(f"{proc.pid}\n")
        await SignalProcess(signal.SIGHUP, pid_file=pid_file).run()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        assert marker.read_text() == "hup"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_signal_missing_process_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UpstreamUnavailableError):
        await SignalProcess(signal.SIGHUP, pid_file=tmp_path / "absent.pid").run()
    with pytest.raises(InvalidRequestError):
        SignalProcess(signal.SIGHUP)


async def test_run_command_status() -> None:
    await RunCommand(["true"]).run()
    with pytest.raises(UpstreamUnavailableError, match="status 1"):
        await RunCommand(["false"]).run()
    with pytest.raises(UpstreamUnavailableError):
        await RunCommand(["/nonexistent/reload"]).run()
