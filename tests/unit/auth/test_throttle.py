"""AuthThrottle: burst then rate, parallel failures take distinct slots, 429 beyond max_wait,
recovery, bounded memory; nothing here ever touches a success."""

from __future__ import annotations

import asyncio

import pytest

from vaultside.auth.throttle import AuthThrottle
from vaultside.clock import FakeClock
from vaultside.errors import PermissionDeniedError, TooManyRequestsError


def _throttle(clock: FakeClock, **kw: float) -> AuthThrottle:
    opts: dict[str, float] = {"burst": 3, "rate": 1.0, "max_wait": 4.0, "max_clients": 100}
    opts.update(kw)
    return AuthThrottle(clock, **opts)  # type: ignore[arg-type]


async def test_burst_then_one_failure_per_interval(clock: FakeClock) -> None:
    t = _throttle(clock)
    waits = [t.charge("1.2.3.4") for _ in range(8)]
    assert waits == [
        (0.0, False), (0.0, False), (0.0, False),
        (1.0, False), (2.0, False), (3.0, False), (4.0, False),
        (4.0, True),
    ]  # fmt: skip
    assert t.charge("5.6.7.8") == (0.0, False)  # other clients are not affected


async def test_parallel_failures_are_held_for_distinct_slots(clock: FakeClock) -> None:
    t = _throttle(clock, burst=2, max_wait=10.0)

    async def fail() -> str:
        try:
            await t.failed("c", PermissionDeniedError("permission denied"))
        except PermissionDeniedError:
            return "403"
        except TooManyRequestsError:
            return "429"
        return "none"

    tasks = [asyncio.ensure_future(fail()) for _ in range(6)]
    await asyncio.sleep(0)
    done_at: list[int] = []
    for _ in range(6):
        done_at.append(sum(task.done() for task in tasks))
        await clock.advance(1.0)
    assert done_at == [2, 3, 4, 5, 6, 6]
    assert [task.result() for task in tasks] == ["403"] * 6


async def test_beyond_max_wait_answers_429_after_max_wait(clock: FakeClock) -> None:
    t = _throttle(clock, burst=1, max_wait=2.0)
    for _ in range(3):
        t.charge("c")
    task = asyncio.ensure_future(t.failed("c", PermissionDeniedError("permission denied")))
    await asyncio.sleep(0)
    await clock.advance(1.9)
    assert not task.done()
    await clock.advance(0.1)
    with pytest.raises(TooManyRequestsError):
        await task


async def test_a_client_recovers_at_the_refill_rate(clock: FakeClock) -> None:
    t = _throttle(clock)
    for _ in range(7):
        t.charge("c")
    assert t.delay_for("c") == 4.0
    await clock.advance(5.0)
    assert t.delay_for("c") == 0.0
    await clock.advance(10.0)
    assert len(t) == 0  # recovered buckets are forgotten


async def test_memory_is_bounded(clock: FakeClock) -> None:
    t = _throttle(clock, max_clients=10)
    for _ in range(5):
        t.charge("attacker")
    for i in range(1000):
        t.charge(f"10.0.{i // 256}.{i % 256}")
    assert len(t) == 10
    assert t.delay_for("attacker") == 0  # the least recently failing was evicted


def test_rejects_nonsense_parameters(clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        AuthThrottle(clock, burst=0)
