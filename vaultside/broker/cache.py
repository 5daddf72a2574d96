"""In-process cache of upstream reads: per-entry TTL, single flight, stale-if-error.

Concurrency: the fresh path never awaits. A miss starts at most one upstream fetch per key;
every concurrent caller for that key awaits the same task (single flight), and a caller being
cancelled does not cancel the shared fetch.

Stale-if-error: when the upstream is *unreachable* (``UpstreamUnavailableError``), the last good
value is served, marked stale, until ``fetched_at + ttl + max_staleness``; past that the
caller gets ``UpstreamUnavailableError`` (503) with the reason. While the upstream is down we
try it again at most every ``retry_interval`` seconds per key, so a down upstream is not
hammered and stale answers stay fast. A definite answer (404, 403, other upstream errors) is
never papered over with a stale value. Once a fetch succeeds, the entry is fresh again.
During a known outage callers never wait on the upstream: they get the stale value at once
while a background probe (at most one per key per ``retry_interval``) checks for recovery;
only the first caller after the outage began waits for its fetch to fail.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client import Counter

from vaultside.clock import Clock
from vaultside.errors import NotFoundError, UpstreamUnavailableError

log = logging.getLogger(__name__)

V = TypeVar("V")

CACHE_HITS = Counter(
    "vaultside_broker_cache_hits_total", "Broker reads served fresh from cache", ["broker"]
)
UPSTREAM_READS = Counter(
    "vaultside_broker_upstream_reads_total", "Broker reads sent upstream", ["broker"]
)
STALE_READS = Counter(
    "vaultside_broker_stale_reads_total", "Broker reads answered with a stale value", ["broker"]
)
STALE_EXPIRED = Counter(
    "vaultside_broker_stale_expired_total",
    "Broker reads refused because the cached value was older than max staleness",
    ["broker"],
)


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    fetched_at: float
    ttl: float
    down: bool = False  # the last refresh found the upstream unreachable
    retry_at: float = 0.0


@dataclass(frozen=True, slots=True)
class CacheResult(Generic[V]):
    """A value and whether it is stale (served because the upstream is unreachable)."""

    value: V
    stale: bool
    age: float


class SecretCache(Generic[V]):
    """TTL cache with single flight and stale-if-error, keyed by any hashable."""

    def __init__(
        self,
        clock: Clock,
        *,
        broker: str,
        max_staleness: float,
        retry_interval: float = 1.0,
        max_entries: int = 10_000,
    ) -> None:
        self._clock = clock
        self._broker = broker
        self.max_staleness = max_staleness
        self._retry_interval = retry_interval
        self._max_entries = max_entries
        # Label children are looked up once: ``labels()`` costs more than the cache hit.
        self._hits = CACHE_HITS.labels(broker)
        self._upstream = UPSTREAM_READS.labels(broker)
        self._stale_reads = STALE_READS.labels(broker)
        # SECURITY: values live only in this process's memory; nothing here is persisted.
        self._entries: dict[Hashable, _Entry[V]] = {}
        self._inflight: dict[Hashable, asyncio.Task[V]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def invalidate(self, key: Hashable) -> None:
        """Forget ``key`` so the next read goes upstream."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()

    async def get(
        self, key: Hashable, ttl: float, fetch: Callable[[], Awaitable[V]]
    ) -> CacheResult[V]:
        """The cached value if fresh, else one shared upstream fetch (stale on outage)."""
        now = self._clock.monotonic()
        entry = self._entries.get(key)
        if entry is not None and now - entry.fetched_at < entry.ttl:
            self._hits.inc()
            return CacheResult(entry.value, False, now - entry.fetched_at)
        if (
            entry is not None
            and entry.down
            and now - entry.fetched_at <= entry.ttl + self.max_staleness
        ):
            # Known outage: answer stale at once and probe upstream in the background, so
            # a hanging upstream (timeouts) never holds callers for ``request_timeout``.
            if key not in self._inflight and now >= entry.retry_at:
                self._start(key, ttl, fetch).add_done_callback(self._probe_done)
            return self._stale(key, entry, now, None)
        task = self._inflight.get(key) or self._start(key, ttl, fetch)
        try:
            value = await asyncio.shield(task)
        except UpstreamUnavailableError as exc:
            entry = self._entries.get(key)
            if entry is None:
                raise
            return self._stale(key, entry, self._clock.monotonic(), exc)
        return CacheResult(value, False, 0.0)

    def _start(
        self, key: Hashable, ttl: float, fetch: Callable[[], Awaitable[V]]
    ) -> asyncio.Task[V]:
        task = asyncio.get_running_loop().create_task(self._fetch(key, ttl, fetch))
        self._inflight[key] = task
        return task

    @staticmethod
    def _probe_done(task: asyncio.Task[V]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved: the outcome is already recorded on the entry

    async def _fetch(self, key: Hashable, ttl: float, fetch: Callable[[], Awaitable[V]]) -> V:
        self._upstream.inc()
        try:
            value = await fetch()
        except NotFoundError:
            self._entries.pop(key, None)
            raise
        except UpstreamUnavailableError:
            entry = self._entries.get(key)
            if entry is not None:
                entry.down = True
                entry.retry_at = self._clock.monotonic() + self._retry_interval
            raise
        finally:
            self._inflight.pop(key, None)
        if key not in self._entries and len(self._entries) >= self._max_entries:
            self._entries.pop(next(iter(self._entries)))
        self._entries[key] = _Entry(value, self._clock.monotonic(), ttl)
        return value

    def _stale(
        self, key: Hashable, entry: _Entry[V], now: float, exc: UpstreamUnavailableError | None
    ) -> CacheResult[V]:
        age = now - entry.fetched_at
        if age > entry.ttl + self.max_staleness:
            STALE_EXPIRED.labels(self._broker).inc()
            reason = exc.message if exc else f"broker {self._broker!r} is unreachable"
            raise UpstreamUnavailableError(
                f"{reason}; the last good value is older than the maximum staleness "
                f"({self.max_staleness:g}s)"
            ) from exc
        self._stale_reads.inc()
        if exc is not None:
            log.warning("broker_stale_read", extra={"broker": self._broker, "age": round(age, 1)})
        return CacheResult(entry.value, True, age)
