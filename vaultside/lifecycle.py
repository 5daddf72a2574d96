"""How long-lived work runs: one background loop task, one forever-loop, one run-until-signal.

- ``Component``: something started once and closed on shutdown (``close`` is idempotent).
- ``LoopTask``: a named background task running one coroutine function. ``start`` starts it
  unless it is already running; ``close`` cancels it and waits until it has finished
  (idempotent); ``async with`` runs it for the duration of a block. Every "start a task /
  cancel it and await it" pair in the package is this.
- ``TaskSet``: one-off background jobs (a scan, a rewrap), each kept until it finishes;
  ``close`` cancels the ones still running and waits for them.
- ``repeat``: the forever loop of periodic jobs: pause, run one step, log a failed step and
  go on. Expected errors (``waiting``, e.g. sealed or upstream unavailable) are warnings,
  anything else an error; only the error's type is logged (a message may carry a path or a
  detail that does not belong in logs). Cancellation ends it.
- ``run_until_signal``: what ``serve``, ``plugin`` and ``sidecar`` do with their process: start
  the components in order, wait for SIGTERM/SIGINT (or ``stop``, or the end of ``main``), then
  close the components in reverse order. A failed ``close`` is logged and the others still
  close; a failed ``start`` closes what was started and propagates.

This module sits below every service package and imports none of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, NoReturn, Protocol

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Component(Protocol):
    """A long-lived part started once and closed on shutdown."""

    async def start(self) -> None:
        """Begin work (listen, connect upstream, start loops)."""
        ...

    async def close(self) -> None:
        """Stop and release resources. Idempotent."""
        ...


class LoopTask:
    """One named background task running ``run()``; see the module docstring."""

    def __init__(self, run: Callable[[], Coroutine[Any, Any, None]], *, name: str) -> None:
        self._run = run
        self.name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """True while the task exists and has not finished."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the task (on the running loop) unless it is running already."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def __aenter__(self) -> LoopTask:
        """Run the task while the block runs (e.g. a lease keeper during a long job)."""
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop the task; an error it ended with is logged: the block's outcome wins."""
        try:
            await self.close()
        except Exception as exc:
            log.error(
                "background task failed",
                extra={"task": self.name, "error_type": type(exc).__name__},
            )

    async def close(self) -> None:
        """Cancel the task and wait for it to finish. Idempotent.

        An error the task ended with (other than the cancellation) propagates.
        """
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class TaskSet:
    """Background jobs started on demand; see the module docstring."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run ``coro`` in the background, keeping a reference until it finishes."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def close(self) -> None:
        """Cancel every job still running and wait until they have ended. Idempotent."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def repeat(
    step: Callable[[], Awaitable[object]],
    *,
    pause: Callable[[], Awaitable[object]],
    what: str,
    waiting: tuple[type[Exception], ...] = (),
    extra: Mapping[str, object] | None = None,
    logger: logging.Logger = log,
) -> NoReturn:
    """Forever: ``await pause()``, then ``await step()``; a failed step is logged, not fatal.

    Logs ``"<what> waiting"`` (warning) for ``waiting`` errors and ``"<what> failed"``
    (error) for any other ``Exception``, with ``extra`` and the error's type.
    """
    fields = dict(extra or {})
    while True:
        await pause()
        try:
            await step()
        except waiting as exc:
            logger.warning(f"{what} waiting", extra={**fields, "error_type": type(exc).__name__})
        except Exception as exc:
            logger.error(f"{what} failed", extra={**fields, "error_type": type(exc).__name__})


async def first_of(*aws: Awaitable[object]) -> int:
    """Wait for the first of ``aws`` to finish, cancel the others and wait until they end.

    Returns the index of the one that finished (the lowest if several did). Results and
    errors stay on the futures passed in (pass tasks to look at them afterwards).
    """
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return min(i for i, task in enumerate(tasks) if task in done)


async def _close_all(components: Sequence[Component]) -> None:
    for component in reversed(components):
        try:
            await component.close()
        except Exception:
            log.exception("component close failed", extra={"component": type(component).__name__})


async def run_until_signal(
    components: Sequence[Component],
    *,
    stop: asyncio.Event | None = None,
    signals: Sequence[signal.Signals] = STOP_SIGNALS,
    on_ready: Callable[[], Awaitable[None]] | None = None,
    main: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Start ``components`` in order, run until a signal, close them in reverse order.

    The run ends when one of ``signals`` arrives, when ``stop`` is set, or when ``main``
    (started once every component is up and ``on_ready`` ran) returns or raises; ``main`` is
    cancelled if it is still running. Errors from ``start``, ``on_ready`` and ``main``
    propagate once every started component is closed. Signal handlers stay installed until
    then, so a second signal during shutdown does not interrupt the closing.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    started: list[Component] = []
    try:
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        for component in components:
            # Closed even if its start fails half-way: ``close`` is idempotent.
            started.append(component)
            await component.start()
        if on_ready is not None:
            await on_ready()
        if main is None:
            await stop.wait()
            return
        work = asyncio.ensure_future(main())
        await first_of(work, stop.wait())
        if not work.cancelled() and (error := work.exception()) is not None:
            raise error
    finally:
        await _close_all(started)
        for sig in installed:
            loop.remove_signal_handler(sig)
