"""The one retry policy: exponential backoff with full jitter, bounded by a deadline.

Everything that waits for something that may not be up yet uses this module: the sidecar's
first render, the CLI client's transport, the plugin's re-delivery loop, the server's unseal
loop (storage, key file, transit seal), broker re-login and lease renewal. The rules (also in
docs/operations.md, "Start-up order and retries"):

- What is retried is the caller's choice; ``is_retryable`` is the default: every 5xx
  ``VaultsideError`` (503 sealed / not ready / unreachable, 502, 500) except ``IntegrityError``.
  4xx answers are final.
- Attempt ``n`` (from 0) waits ``uniform(0, min(cap, base * 2**n))`` ("full jitter"), so a
  fleet that failed together does not retry together.
- A deadline bounds the whole wait. The last attempt runs at the deadline; if it fails too,
  ``DeadlineExceededError`` (503, CLI exit code 7) says what was waited for, how long, and the
  last error's message. ``timeout=0`` means one attempt and the original error; ``None``
  means no deadline. ``max_retries`` (``VAULTSIDE_MAX_RETRIES``) also bounds the count.
- One log line (``retrying``, warning) per backoff step, with ``what``, ``attempt``,
  ``retry_in`` and the error's message. Messages never carry tokens or values (errors.py).
- Periodic work (polling, renewals) spreads its period with ``jitter``, which only ever
  shortens it: a renewal is never later than planned.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, TypeVar

from vaultside.clock import Clock, SystemClock
from vaultside.errors import DeadlineExceededError, IntegrityError, VaultsideError

log = logging.getLogger(__name__)
T = TypeVar("T")

_MAX_EXPONENT: Final = 60  # 2**60 * base is past any cap; keeps the float finite


def is_retryable(exc: BaseException) -> bool:
    """True for 5xx ``VaultsideError``s (sealed, unavailable, upstream, internal), except
    integrity failures, which must never be retried."""
    return (
        isinstance(exc, VaultsideError)
        and exc.status >= 500
        and not isinstance(exc, IntegrityError | DeadlineExceededError)
    )


@dataclass(slots=True)
class Backoff:
    """Delays for consecutive failures: ``uniform(0, min(cap, base * 2**n))``; ``reset()``
    after a success."""

    base: float = 0.25
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    attempt: int = 0

    def next(self) -> float:
        """The delay before the next attempt (and count this failure)."""
        ceiling = min(self.cap, self.base * 2 ** min(self.attempt, _MAX_EXPONENT))
        self.attempt += 1
        return self.rng.uniform(0.0, max(0.0, ceiling))

    def reset(self) -> None:
        """Start again from ``base`` (after a success)."""
        self.attempt = 0


def jitter(seconds: float, spread: float = 0.2, rng: random.Random | None = None) -> float:
    """``seconds`` shortened by a random fraction of at most ``spread`` (never lengthened)."""
    if seconds <= 0:
        return 0.0
    fraction = (rng or random).uniform(0.0, min(max(spread, 0.0), 1.0))
    return seconds * (1.0 - fraction)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to keep trying (``timeout`` seconds; ``None`` forever, ``0`` once) and the
    backoff's ``base`` and ``cap``."""

    timeout: float | None = 60.0
    base: float = 0.25
    cap: float = 5.0
    max_retries: int | None = None  # also stop after this many retries (None: no limit)

    @property
    def retries(self) -> bool:
        """False for a single attempt (``timeout == 0`` or ``max_retries == 0``)."""
        return (self.timeout is None or self.timeout > 0) and self.max_retries != 0

    def backoff(self, rng: random.Random | None = None) -> Backoff:
        """A fresh ``Backoff`` with this policy's base and cap."""
        return Backoff(self.base, self.cap, rng or random.Random())  # noqa: S311


NO_RETRY: Final = RetryPolicy(timeout=0.0)


def policy_from_seconds(
    value: float | None, *, base: float = 0.25, cap: float = 5.0
) -> RetryPolicy:
    """A policy from a user's ``--timeout``-style setting: ``0`` or less means no deadline."""
    return RetryPolicy(timeout=None if value is None or value <= 0 else value, base=base, cap=cap)


async def retry(
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    policy: RetryPolicy,
    clock: Clock | None = None,
    retry_on: Callable[[BaseException], bool] = is_retryable,
    rng: random.Random | None = None,
) -> T:
    """``await call()`` until it succeeds, a non-retryable error is raised, or the deadline
    passes (then ``DeadlineExceededError`` from the last error). See the module docstring."""
    if not policy.retries:
        return await call()
    clock = clock or SystemClock()
    start = clock.monotonic()
    backoff = policy.backoff(rng)
    while True:
        try:
            return await call()
        except Exception as exc:
            if not retry_on(exc):
                raise
            message = exc.message if isinstance(exc, VaultsideError) else type(exc).__name__
            elapsed = clock.monotonic() - start
            delay = backoff.next()
            out_of_retries = policy.max_retries is not None and backoff.attempt > policy.max_retries
            if policy.timeout is not None or out_of_retries:
                left = 0.0 if out_of_retries else (policy.timeout or 0.0) - elapsed
                if left <= 0:
                    raise DeadlineExceededError(
                        f"{what}: still failing after {elapsed:.1f}s and {backoff.attempt} "
                        f"attempt(s), giving up: {message}"
                    ) from exc
                delay = min(delay, left)
            log.warning(
                "retrying",
                extra={
                    "what": what,
                    "attempt": backoff.attempt,
                    "retry_in": round(delay, 3),
                    "error": message,
                },
            )
            await clock.sleep(delay)
