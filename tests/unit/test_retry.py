"""The shared retry policy: full-jitter backoff, deadline, what is retried, one log line a step."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from vaultside.clock import FakeClock
from vaultside.errors import (
    DeadlineExceededError,
    IntegrityError,
    InternalError,
    NotFoundError,
    SealedError,
    UpstreamError,
    UpstreamUnavailableError,
)
from vaultside.retry import Backoff, RetryPolicy, is_retryable, jitter, policy_from_seconds, retry


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    b = Backoff(base=0.5, cap=4.0, rng=random.Random(7))
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    delays = [b.next() for _ in ceilings]
    assert all(0.0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    # full jitter: spread over the whole range, not clustered at the ceiling
    many = [Backoff(base=1.0, cap=1.0, rng=random.Random(i)).next() for i in range(200)]
    assert min(many) < 0.1 and max(many) > 0.9
    b.reset()
    assert b.attempt == 0 and b.next() <= 0.5


def test_jitter_only_shortens() -> None:
    rng = random.Random(3)
    got = [jitter(10.0, 0.2, rng) for _ in range(200)]
    assert all(8.0 <= g <= 10.0 for g in got) and len(set(got)) > 100
    assert jitter(0.0) == 0.0


def test_what_is_retryable() -> None:
    for exc in (
        SealedError(),
        UpstreamUnavailableError("x"),
        UpstreamError("x"),
        InternalError("x"),
    ):
        assert is_retryable(exc)
    for exc in (NotFoundError("x"), IntegrityError("x"), DeadlineExceededError("x"), OSError()):
        assert not is_retryable(exc)


def test_policy_from_seconds() -> None:
    assert policy_from_seconds(0).timeout is None and policy_from_seconds(None).timeout is None
    assert policy_from_seconds(12.5).timeout == 12.5


async def _drive(clock: FakeClock, task: asyncio.Task[object], step: float = 0.05) -> None:
    while not task.done():
        await clock.advance(step)


async def test_retries_until_success_with_one_log_line_per_step(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise UpstreamUnavailableError(
                "cannot reach vaultside at http://x: ClientConnectorError"
            )
        return "ok"

    caplog.set_level(logging.WARNING, logger="vaultside.retry")
    policy = RetryPolicy(timeout=60, base=0.5, cap=2.0)
    task = asyncio.create_task(retry(flaky, what="first render", policy=policy, clock=clock))
    await _drive(clock, task)
    assert task.result() == "ok" and calls == 4
    steps = [r for r in caplog.records if r.getMessage() == "retrying"]
    assert [r.__dict__["attempt"] for r in steps] == [1, 2, 3]
    assert all(r.__dict__["what"] == "first render" for r in steps)


async def test_deadline_gives_up_with_the_last_error() -> None:
    clock = FakeClock()
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise SealedError("vaultside is sealed")

    policy = RetryPolicy(timeout=10, base=0.5, cap=2.0)
    task = asyncio.create_task(retry(down, what="render", policy=policy, clock=clock))
    await _drive(clock, task, 0.5)
    with pytest.raises(DeadlineExceededError, match=r"render: still failing after 10\.0s.*sealed"):
        task.result()
    assert clock.monotonic() <= 11 and calls >= 6  # ~cap/2 per step, last attempt at the deadline


async def test_non_retryable_and_no_retry_policy_raise_at_once() -> None:
    calls = 0

    async def missing() -> None:
        nonlocal calls
        calls += 1
        raise NotFoundError("secret app/x not found")

    with pytest.raises(NotFoundError):
        await retry(missing, what="x", policy=RetryPolicy(timeout=60), clock=FakeClock())

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise UpstreamUnavailableError("down")

    with pytest.raises(UpstreamUnavailableError) as info:
        await retry(down, what="x", policy=RetryPolicy(timeout=0), clock=FakeClock())
    assert type(info.value) is UpstreamUnavailableError and calls == 2
