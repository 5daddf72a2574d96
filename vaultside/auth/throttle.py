"""Slow down clients that keep presenting invalid tokens, never callers with valid ones.

The rules (see docs/auth-audit.md):

- The token is validated first. A valid token is never delayed or refused here, whatever
  its client (or anyone else) failed before. Only failures are charged, and a success resets
  nothing, so mixing a valid low-privilege token into a guessing run buys no fresh budget.
- Each client has a failure budget, kept as a GCRA token bucket: ``burst`` failures are
  answered at once, after that one failure per ``1 / rate`` seconds. A failure is charged the
  moment it is known, synchronously (no ``await`` between reading and advancing the bucket),
  so parallel requests each take their own slot instead of all reading the same count: a
  client's failure answers come out at most ``burst + rate * t`` within ``t`` seconds, however
  many it sends at once.
- A failure whose slot is more than ``max_wait`` away is answered ``429`` after ``max_wait``
  (and does not push the bucket further out), so one client's flood cannot hold connections
  forever nor lock itself out for longer than ``burst / rate + max_wait``.
- At most ``max_clients`` buckets are kept; recovered ones are dropped first, then the least
  recently failing, so memory stays bounded when an attacker rotates addresses.

The bound is on *answered* failures per client and process. The server must still look a
token up to let a valid one through, so a client that does not wait for its failure answers
only learns "not accepted at once"; tokens carry ~256 bits, and the hold costs such a client
one open connection per guess for up to ``max_wait`` seconds.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NoReturn

from vaultside.clock import Clock
from vaultside.errors import PermissionDeniedError, TooManyRequestsError


class AuthThrottle:
    """Per-client failure budget (GCRA) applied to failed authentications only."""

    def __init__(
        self,
        clock: Clock,
        *,
        burst: int = 10,
        rate: float = 1.0,
        max_wait: float = 8.0,
        max_clients: int = 10_000,
    ) -> None:
        if burst < 1 or rate <= 0 or max_wait < 0 or max_clients < 1:
            raise ValueError("throttle: burst >= 1, rate > 0, max_wait >= 0, max_clients >= 1")
        self._clock = clock
        self._interval = 1.0 / rate
        self._tolerance = burst * self._interval
        self._max_wait = max_wait
        self._max_clients = max_clients
        # client -> theoretical arrival time of its next failure (monotonic seconds).
        self._tat: OrderedDict[str, float] = OrderedDict()

    def charge(self, client: str) -> tuple[float, bool]:
        """Charge one failure to ``client`` now: (seconds to hold its answer, refused?).

        Synchronous on purpose: concurrent failures are charged one after another.
        """
        now = self._clock.monotonic()
        tat = max(self._tat.get(client, now), now) + self._interval
        wait = tat - now - self._tolerance
        if wait > self._max_wait:
            self._touch(client, self._tat.get(client, now))
            return self._max_wait, True
        self._touch(client, tat)
        return max(wait, 0.0), False

    async def failed(self, client: str, error: PermissionDeniedError) -> NoReturn:
        """Charge a failed authentication, hold its answer for its slot, then raise.

        Raises ``error`` (403) once its slot came, or ``TooManyRequestsError`` (429) after
        ``max_wait`` when the client's budget is exhausted beyond that.
        """
        wait, refused = self.charge(client)
        if wait > 0:
            await self._clock.sleep(wait)
        if refused:
            raise TooManyRequestsError("too many failed authentication attempts; retry later")
        raise error

    def delay_for(self, client: str) -> float:
        """Seconds the next failure of ``client`` would be held now (0 when within budget)."""
        now = self._clock.monotonic()
        tat = max(self._tat.get(client, now), now) + self._interval
        return min(max(tat - now - self._tolerance, 0.0), self._max_wait)

    def _touch(self, client: str, tat: float) -> None:
        self._tat[client] = tat
        self._tat.move_to_end(client)
        while len(self._tat) > self._max_clients:
            self._tat.popitem(last=False)

    def _forget_recovered(self) -> None:
        now = self._clock.monotonic()
        for client in [c for c, tat in self._tat.items() if tat <= now]:
            del self._tat[client]

    def __len__(self) -> int:
        self._forget_recovered()
        return len(self._tat)
