"""ReloadQueue: background reload actions, bounded concurrency, timeouts, coalescing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from vaultside.clock import FakeClock
from vaultside.inject.reload import ReloadQueue


class Actions:
    """Actions that block until released, recording what started and finished."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}

    def make(self, label: str) -> Callable[[], Awaitable[None]]:
        gate = self.gates.setdefault(label, asyncio.Event())

        async def action() -> None:
            self.started.append(label)
            await gate.wait()
            self.finished.append(label)

        return action


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_submit_returns_at_once_and_concurrency_is_bounded() -> None:
    queue, acts = ReloadQueue(concurrency=2, timeout=60, clock=FakeClock()), Actions()
    for key in ("a", "b", "c"):
        queue.submit(key, acts.make(key))  # no await: never blocks the caller
    await settle()
    assert acts.started == ["a", "b"] and queue.pending() == 3
    acts.gates["a"].set()
    await settle()
    assert acts.started == ["a", "b", "c"] and acts.finished == ["a"]
    acts.gates["b"].set()
    acts.gates["c"].set()
    await queue.idle()
    assert queue.pending() == 0


async def test_a_hung_action_times_out_and_frees_its_slot() -> None:
    clock = FakeClock()
    queue, acts = ReloadQueue(concurrency=1, timeout=30, clock=clock), Actions()
    queue.submit("slow", acts.make("slow"))
    queue.submit("fast", acts.make("fast"))
    acts.gates["fast"].set()
    await settle()
    assert acts.started == ["slow"]
    await clock.advance(29)
    await settle()
    assert acts.started == ["slow"] and queue.timed_out == 0
    await clock.advance(1)
    await queue.idle()
    assert acts.started == ["slow", "fast"] and acts.finished == ["fast"]
    assert queue.timed_out == 1


async def test_submits_for_a_busy_container_coalesce_into_one_more_run() -> None:
    queue, acts = ReloadQueue(concurrency=4, timeout=60, clock=FakeClock()), Actions()
    queue.submit("c1", acts.make("v1"))
    await settle()
    for label in ("v2", "v3", "v4"):  # new versions while v1's restart is running
        queue.submit("c1", acts.make(label))
        acts.gates[label].set()
    queue.submit("c2", acts.make("other"))
    acts.gates["other"].set()
    await settle()
    assert acts.finished == ["other"]  # another container is not held up
    acts.gates["v1"].set()
    await queue.idle()
    assert acts.started == ["v1", "other", "v4"]  # one more run, with the newest action


async def test_a_crashing_action_is_logged_and_the_queue_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue, acts = ReloadQueue(concurrency=1, timeout=60, clock=FakeClock()), Actions()

    async def boom() -> None:
        raise RuntimeError("boom")

    queue.submit("a", boom)
    queue.submit("b", acts.make("b"))
    acts.gates["b"].set()
    await queue.idle()
    assert acts.finished == ["b"]
    assert any(r.getMessage() == "reload action crashed" for r in caplog.records)


async def test_close_cancels_running_and_drops_waiting() -> None:
    queue, acts = ReloadQueue(concurrency=1, timeout=60, clock=FakeClock()), Actions()
    queue.submit("a", acts.make("a"))
    queue.submit("a", acts.make("a2"))
    queue.submit("b", acts.make("b"))
    await settle()
    await queue.close()
    assert queue.pending() == 0 and acts.started == ["a"] and acts.finished == []
    queue.submit("c", acts.make("c"))  # refused after close
    await settle()
    assert queue.pending() == 0


async def test_close_right_after_submit() -> None:
    queue, acts = ReloadQueue(concurrency=1, timeout=60, clock=FakeClock()), Actions()
    queue.submit("a", acts.make("a"))  # its task has not run a single step yet
    await queue.close()
    await queue.idle()
    assert queue.pending() == 0 and acts.started == []
