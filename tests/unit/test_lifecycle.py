"""``vaultside.lifecycle``: the loop task, the forever loop and run-until-signal."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import pytest

from vaultside.errors import SealedError
from vaultside.lifecycle import LoopTask, first_of, repeat, run_until_signal


class Part:
    """A component that records its start and close calls in a shared journal."""

    def __init__(self, name: str, journal: list[str], *, fail_start: bool = False,
                 fail_close: bool = False) -> None:  # fmt: skip
        self.name = name
        self.journal = journal
        self.fail_start = fail_start
        self.fail_close = fail_close

    async def start(self) -> None:
        self.journal.append(f"start {self.name}")
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot start")

    async def close(self) -> None:
        self.journal.append(f"close {self.name}")
        if self.fail_close:
            raise RuntimeError(f"{self.name} cannot close")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_closes_the_components_in_reverse_order(sig: signal.Signals) -> None:
    journal: list[str] = []

    async def ready() -> None:
        journal.append("ready")
        os.kill(os.getpid(), sig)  # delivered to the loop's handler, not the default action

    parts = [Part(n, journal) for n in ("storage", "api", "plugin")]
    await asyncio.wait_for(run_until_signal(parts, on_ready=ready), 10)
    assert journal == [
        "start storage", "start api", "start plugin", "ready",
        "close plugin", "close api", "close storage",
    ]  # fmt: skip
    # The handlers are gone again: nothing is left pointing at the finished run.
    loop = asyncio.get_running_loop()
    assert not loop.remove_signal_handler(sig)


async def test_a_failed_start_closes_what_was_started_and_propagates() -> None:
    journal: list[str] = []
    parts = [Part("a", journal), Part("b", journal, fail_start=True), Part("c", journal)]
    with pytest.raises(RuntimeError, match="b cannot start"):
        await run_until_signal(parts, signals=())
    assert journal == ["start a", "start b", "close b", "close a"]


async def test_a_failed_close_is_logged_and_the_others_still_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal: list[str] = []
    stop = asyncio.Event()
    stop.set()
    parts = [Part("a", journal), Part("b", journal, fail_close=True)]
    with caplog.at_level(logging.ERROR, logger="vaultside.lifecycle"):
        await run_until_signal(parts, stop=stop, signals=())
    assert journal == ["start a", "start b", "close b", "close a"]
    assert [r.getMessage() for r in caplog.records] == ["component close failed"]


async def test_the_run_ends_with_main_and_its_error_propagates() -> None:
    journal: list[str] = []

    async def main() -> None:
        journal.append("main")

    await run_until_signal([Part("a", journal)], signals=(), main=main)
    assert journal == ["start a", "main", "close a"]

    async def broken() -> None:
        raise ValueError("render failed")

    with pytest.raises(ValueError, match="render failed"):
        await run_until_signal([Part("b", journal)], signals=(), main=broken)
    assert journal[-1] == "close b"


async def test_a_stop_cancels_main() -> None:
    stop = asyncio.Event()
    cancelled = asyncio.Event()

    async def main() -> None:
        stop.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    await asyncio.wait_for(run_until_signal([], stop=stop, signals=(), main=main), 10)
    assert cancelled.is_set()


async def test_loop_task_starts_once_and_close_is_idempotent() -> None:
    runs = 0
    gate = asyncio.Event()

    async def forever() -> None:
        nonlocal runs
        runs += 1
        await gate.wait()

    task = LoopTask(forever, name="unit-loop")
    await task.close()  # never started: nothing to do
    task.start()
    task.start()
    await asyncio.sleep(0)
    assert task.running and runs == 1
    await task.close()
    assert not task.running
    await task.close()
    task.start()  # a closed task can start again
    await asyncio.sleep(0)
    assert runs == 2
    await task.close()


async def test_a_failing_iteration_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    steps = 0
    fourth = asyncio.Event()

    async def step() -> None:
        nonlocal steps
        steps += 1
        if steps == 1:
            raise SealedError("sealed")
        if steps == 2:
            raise RuntimeError("boom")
        if steps == 4:
            fourth.set()

    async def pause() -> None:
        await asyncio.sleep(0)

    async def loop() -> None:
        await repeat(
            step, pause=pause, what="unit job", waiting=(SealedError,), extra={"job": "unit"}
        )

    task = LoopTask(loop, name="unit-repeat")
    with caplog.at_level(logging.WARNING, logger="vaultside.lifecycle"):
        task.start()
        await asyncio.wait_for(fourth.wait(), 10)
        await task.close()
    got = [(r.levelname, r.getMessage(), getattr(r, "error_type", None)) for r in caplog.records]
    assert got == [
        ("WARNING", "unit job waiting", "SealedError"),
        ("ERROR", "unit job failed", "RuntimeError"),
    ]
    assert all(getattr(r, "job", None) == "unit" for r in caplog.records)
    assert steps >= 4 and not task.running


async def test_first_of_cancels_the_others_and_says_which_finished() -> None:
    never = asyncio.Event()
    slow = asyncio.ensure_future(never.wait())
    assert await first_of(slow, asyncio.sleep(0)) == 1
    assert slow.cancelled()
    done = asyncio.Event()
    done.set()
    assert await first_of(done.wait(), done.wait()) == 0  # both finished: the lowest index


async def test_a_keeper_runs_for_a_block_and_its_error_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    started = asyncio.Event()

    async def keeper() -> None:
        started.set()
        raise OSError("storage gone")

    with caplog.at_level(logging.ERROR, logger="vaultside.lifecycle"):
        async with LoopTask(keeper, name="unit-keeper") as task:
            await started.wait()
            await asyncio.sleep(0)
            result = "work done"
    assert result == "work done" and not task.running
    assert [(r.getMessage(), getattr(r, "task", None)) for r in caplog.records] == [
        ("background task failed", "unit-keeper")
    ]
