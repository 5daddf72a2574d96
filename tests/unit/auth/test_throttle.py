"""AuthThrottle: exponential delay, hard limit, reset, window, bounded memory."""

from __future__ import annotations

import asyncio

import pytest

from vaultside.auth.throttle import AuthThrottle
from vaultside.clock import FakeClock
from vaultside.errors import TooManyRequestsError


def _throttle(clock: FakeClock, **kw: float) -> AuthThrottle:
    opts: dict[str, float] = {
        "free_failures": 3,
        "base_delay": 1.0,
        "max_delay": 4.0,
        "hard_limit": 8,
        "window": 60.0,
        "max_clients": 100,
    }
    opts.update(kw)
    return AuthThrottle(clock, **opts)  # type: ignore[arg-type]


async def test_delays_grow_exponentially_and_cap(clock: FakeClock) -> None:
    t = _throttle(clock)
    delays = []
    for _ in range(7):
        delays.append(t.delay_for("1.2.3.4"))
        t.failure("1.2.3.4")
    assert delays == [0, 0, 0, 1, 2, 4, 4]
    assert t.delay_for("5.6.7.8") == 0


async def test_before_sleeps_on_the_clock(clock: FakeClock) -> None:
    t = _throttle(clock)
    for _ in range(4):
        t.failure("c")
    task = asyncio.create_task(t.before("c"))
    await asyncio.sleep(0)  # let it start sleeping
    await clock.advance(1.9)
    assert not task.done()
    await clock.advance(0.1)
    assert task.done()
    await task
    await t.before("other")  # unaffected, returns at once


async def test_hard_limit_then_window_expiry(clock: FakeClock) -> None:
    t = _throttle(clock)
    for _ in range(8):
        t.failure("c")
    with pytest.raises(TooManyRequestsError):
        await t.before("c")
    await clock.advance(59)
    with pytest.raises(TooManyRequestsError):
        await t.before("c")
    await clock.advance(1)
    await t.before("c")
    assert len(t) == 0


async def test_success_resets(clock: FakeClock) -> None:
    t = _throttle(clock)
    for _ in range(5):
        t.failure("c")
    assert t.delay_for("c") > 0
    t.success("c")
    assert t.delay_for("c") == 0
    await t.before("c")


async def test_memory_is_bounded(clock: FakeClock) -> None:
    t = _throttle(clock, max_clients=10)
    for _ in range(5):
        t.failure("attacker")
    for i in range(1000):
        t.failure(f"10.0.{i // 256}.{i % 256}")
    assert len(t) == 10
    assert t.delay_for("attacker") == 0  # the oldest was evicted
