"""Summaries of repeated denials, so anonymous floods cannot fill the audit disk.

A request that was refused before any token was accepted (no identity, a 4xx status) is a
*denial*. Per client key, the first denial opens a window of ``interval`` seconds and is
written as a normal record (synchronously: fail closed). Every further denial from that
client inside the window is only counted; when the window ends, one record with
``operation: "summary"`` and ``extra.kind: "denials"`` carries the count, the statuses and the
first and last request ids. So every request is accounted for: the individual denial records
plus the summaries' counts add up to the denials served.

Memory is bounded: at most ``max_clients`` windows are open; denials from further clients
share one window keyed ``*``. Pending counts are written on ``close`` (graceful shutdown); a
crash loses at most one interval of counts (the requests were refused, nothing happened).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from vaultside.audit.events import AuditEvent
from vaultside.clock import Clock
from vaultside.lifecycle import LoopTask

log = logging.getLogger(__name__)

OVERFLOW_KEY = "*"


@dataclass(slots=True)
class _Window:
    opened: float  # monotonic
    first: AuditEvent
    count: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    first_id: str = ""
    last_id: str = ""
    last_time: float = 0.0


class DenialSummaries:
    """Counts denials per client and interval; ``write`` receives the summary events."""

    def __init__(
        self,
        write: Callable[[AuditEvent], Awaitable[None]],
        clock: Clock,
        *,
        interval: float = 10.0,
        max_clients: int = 1000,
    ) -> None:
        self._write = write
        self._clock = clock
        self._interval = interval
        self._max_clients = max_clients
        self._windows: dict[str, _Window] = {}
        self._flush_loop = LoopTask(self._flusher, name="denial-summary")

    def absorb(self, key: str, event: AuditEvent) -> bool:
        """True if ``event`` was counted into an open window (do not write it), False if it
        opened a window (write it as usual). ``interval`` 0 disables summaries."""
        if self._interval <= 0:
            return False
        if key not in self._windows and len(self._windows) >= self._max_clients:
            key = OVERFLOW_KEY
        window = self._windows.get(key)
        now = self._clock.monotonic()
        if window is None:
            self._windows[key] = _Window(now, event)
            self._ensure_flusher()
            return False
        window.count += 1
        window.statuses[event.status] += 1
        window.first_id = window.first_id or event.request_id
        window.last_id, window.last_time = event.request_id, event.time
        return True

    def pending(self) -> int:
        """Denials counted but not written yet."""
        return sum(w.count for w in self._windows.values())

    def _ensure_flusher(self) -> None:
        self._flush_loop.start()

    async def _flusher(self) -> None:
        while self._windows:
            oldest = min(w.opened for w in self._windows.values())
            await self._clock.sleep(max(oldest + self._interval - self._clock.monotonic(), 0.0))
            await self.flush(due_only=True)

    async def flush(self, *, due_only: bool = False) -> None:
        """Write the summaries of closed windows (all windows unless ``due_only``)."""
        now = self._clock.monotonic()
        for key, window in list(self._windows.items()):
            if due_only and now - window.opened < self._interval:
                continue
            del self._windows[key]
            if window.count == 0:
                continue
            try:
                await self._write(self._summary(key, window))
            except Exception as exc:
                log.error("denial summary not written", extra={"error_type": type(exc).__name__})
                if due_only:  # keep the count; the next flush retries it
                    self._windows.setdefault(key, replace(window, opened=now))

    def _summary(self, key: str, window: _Window) -> AuditEvent:
        statuses = ",".join(f"{s}:{n}" for s, n in sorted(window.statuses.items()))
        top = window.statuses.most_common(1)[0][0]
        return replace(
            window.first,
            time=window.last_time,
            request_id=f"summary-{window.last_id}",
            operation="summary",
            path=window.first.path if key != OVERFLOW_KEY else "*",
            status=top,
            client=window.first.client if key != OVERFLOW_KEY else OVERFLOW_KEY,
            latency_ms=0.0,
            error=None,
            extra={
                "kind": "denials",
                "count": str(window.count),
                "statuses": statuses,
                "first_request_id": window.first_id,
                "last_request_id": window.last_id,
                "interval_s": f"{self._interval:g}",
            },
        )

    async def close(self) -> None:
        """Write every pending count and stop the flusher."""
        await self._flush_loop.close()
        await self.flush()
