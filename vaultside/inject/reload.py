"""Reload actions (signal or restart a container) run off the re-delivery path.

Restarting a container takes as long as Docker's stop timeout (10 s for a process that
ignores SIGTERM). Re-delivery must not wait for that: new files for every other volume are
due at the next pass. So re-delivery only ``submit``s an action and goes on; the queue runs it:

- at most ``concurrency`` actions at once (the Docker adapter gives them their own worker
  threads, so they never starve the threads the plugin's mounts and writes use);
- each for at most ``timeout`` seconds, then it is abandoned with a warning (the engine call
  behind it is bounded by the Docker client's own timeout);
- per key (a container id) one runs and at most one waits: a new submit while one is waiting
  replaces it. The waiting one starts after the running one, so the container is always
  reloaded once more after its newest files, and a slow container never piles up actions.

``close`` cancels what is running and drops what waits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from vaultside.clock import Clock, SystemClock
from vaultside.lifecycle import first_of

log = logging.getLogger(__name__)
Action = Callable[[], Awaitable[None]]
DEFAULT_CONCURRENCY = 4
DEFAULT_TIMEOUT = 60.0


class ReloadQueue:
    """Runs reload actions in the background: bounded concurrency, per-action timeout."""

    def __init__(
        self,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock | None = None,
    ) -> None:
        self.timeout = timeout
        self.clock = clock or SystemClock()
        self.timed_out = 0
        self._slots = asyncio.Semaphore(concurrency)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._waiting: dict[str, Action] = {}
        self._closed = False

    def submit(self, key: str, action: Action) -> None:
        """Run ``action`` for ``key`` soon; never waits (see the module doc for coalescing)."""
        if self._closed:
            return
        if key in self._running:
            self._waiting[key] = action
            return
        self._running[key] = asyncio.create_task(self._run(key, action), name="reload")

    def pending(self) -> int:
        """Actions running or waiting."""
        return len(self._running) + len(self._waiting)

    async def idle(self) -> None:
        """Wait until nothing runs or waits (tests, shutdown)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def _run(self, key: str, action: Action) -> None:
        try:
            async with self._slots:
                await self._bounded(key, action)
        finally:
            del self._running[key]
            following = self._waiting.pop(key, None)
            if following is not None and not self._closed:
                self.submit(key, following)

    async def _bounded(self, key: str, action: Action) -> None:
        work = asyncio.ensure_future(action())
        await first_of(work, self.clock.sleep(self.timeout))  # a late action is cancelled
        if work.cancelled():
            self.timed_out += 1
            log.warning(
                "reload action timed out", extra={"container": key[:12], "timeout": self.timeout}
            )
        elif (exc := work.exception()) is not None:
            log.error(
                "reload action crashed",
                extra={"container": key[:12], "error_type": type(exc).__name__},
            )

    async def close(self) -> None:
        """Cancel running actions and drop waiting ones."""
        self._closed = True
        self._waiting.clear()
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._running.clear()  # a task cancelled before its first step never ran its finally
