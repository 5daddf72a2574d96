"""Slow down clients that keep failing to authenticate.

Once a client has ``n >= free_failures`` consecutive failures, each attempt first waits
``base_delay * 2**(n - free_failures)`` seconds (capped at ``max_delay``); at
``hard_limit`` failures the client is refused with ``TooManyRequestsError`` until ``window``
seconds pass without a failure. A success resets the client. At most ``max_clients`` are
tracked: the least recently failing one is forgotten first, so memory stays bounded even when
an attacker rotates source addresses.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from vaultside.clock import Clock
from vaultside.errors import TooManyRequestsError


@dataclass(slots=True)
class _Failures:
    count: int
    last: float


class AuthThrottle:
    """Per-client exponential delay after repeated auth failures, with a hard limit."""

    def __init__(
        self,
        clock: Clock,
        *,
        free_failures: int = 5,
        base_delay: float = 0.25,
        max_delay: float = 8.0,
        hard_limit: int = 30,
        window: float = 900.0,
        max_clients: int = 10_000,
    ) -> None:
        self._clock = clock
        self._free = free_failures
        self._base = base_delay
        self._max_delay = max_delay
        self._hard = hard_limit
        self._window = window
        self._max_clients = max_clients
        self._clients: OrderedDict[str, _Failures] = OrderedDict()

    def _current(self, client: str) -> _Failures | None:
        entry = self._clients.get(client)
        if entry is not None and self._clock.monotonic() - entry.last >= self._window:
            del self._clients[client]
            return None
        return entry

    def delay_for(self, client: str) -> float:
        """Seconds ``before`` would wait for this client now (0 when not throttled)."""
        entry = self._current(client)
        if entry is None or entry.count < self._free:
            return 0.0
        exponent = entry.count - self._free
        if exponent >= 64:
            return self._max_delay
        return float(min(self._base * 2**exponent, self._max_delay))

    async def before(self, client: str) -> None:
        """Call before checking a credential: waits, or raises ``TooManyRequestsError``."""
        entry = self._current(client)
        if entry is not None and entry.count >= self._hard:
            raise TooManyRequestsError("too many failed authentication attempts; retry later")
        delay = self.delay_for(client)
        if delay > 0:
            await self._clock.sleep(delay)

    def failure(self, client: str) -> None:
        """Record a failed authentication from ``client``."""
        entry = self._current(client)
        now = self._clock.monotonic()
        if entry is None:
            entry = _Failures(0, now)
            self._clients[client] = entry
        entry.count += 1
        entry.last = now
        self._clients.move_to_end(client)
        while len(self._clients) > self._max_clients:
            self._clients.popitem(last=False)

    def success(self, client: str) -> None:
        """Forget the client's failures."""
        self._clients.pop(client, None)

    def __len__(self) -> int:
        return len(self._clients)
