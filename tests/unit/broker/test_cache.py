"""SecretCache: TTL, single flight, stale-if-error window, recovery."""

from __future__ import annotations

import asyncio

import pytest

from vaultside.broker.cache import SecretCache
from vaultside.clock import FakeClock
from vaultside.errors import NotFoundError, UpstreamUnavailableError


class Upstream:
    def __init__(self) -> None:
        self.calls = 0
        self.down = False
        self.missing = False
        self.gate: asyncio.Event | None = None

    async def fetch(self) -> str:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise UpstreamUnavailableError("broker 'b' is unreachable")
        if self.missing:
            raise NotFoundError("gone")
        return f"v{self.calls}"


def make(clock: FakeClock, staleness: float = 100) -> SecretCache[str]:
    return SecretCache(clock, broker="b", max_staleness=staleness, retry_interval=1)


async def test_fresh_hit_does_not_call_upstream(clock: FakeClock) -> None:
    cache, up = make(clock), Upstream()
    first = await cache.get("k", 10, up.fetch)
    await clock.advance(9)
    second = await cache.get("k", 10, up.fetch)
    assert (first.value, second.value, up.calls) == ("v1", "v1", 1)
    assert not second.stale
    await clock.advance(2)
    assert (await cache.get("k", 10, up.fetch)).value == "v2"


async def test_concurrent_misses_share_one_upstream_call(clock: FakeClock) -> None:
    cache, up = make(clock), Upstream()
    up.gate = asyncio.Event()
    waiters = [asyncio.create_task(cache.get("k", 10, up.fetch)) for _ in range(100)]
    await asyncio.sleep(0)
    up.gate.set()
    results = await asyncio.gather(*waiters)
    assert up.calls == 1
    assert {r.value for r in results} == {"v1"}


async def test_cancelled_caller_does_not_cancel_shared_fetch(clock: FakeClock) -> None:
    cache, up = make(clock), Upstream()
    up.gate = asyncio.Event()
    a = asyncio.create_task(cache.get("k", 10, up.fetch))
    b = asyncio.create_task(cache.get("k", 10, up.fetch))
    await asyncio.sleep(0)
    a.cancel()
    up.gate.set()
    assert (await b).value == "v1"
    assert up.calls == 1


async def test_stale_within_window_then_503_then_recovery(clock: FakeClock) -> None:
    cache, up = make(clock, staleness=100), Upstream()
    await cache.get("k", 10, up.fetch)
    up.down = True
    await clock.advance(50)
    stale = await cache.get("k", 10, up.fetch)
    assert stale.stale and stale.value == "v1"
    await clock.advance(59)  # age 109 < 10 + 100
    assert (await cache.get("k", 10, up.fetch)).stale
    await clock.advance(2)  # age 111 > 110
    with pytest.raises(UpstreamUnavailableError, match="maximum staleness"):
        await cache.get("k", 10, up.fetch)
    up.down = False
    await clock.advance(1)
    fresh = await cache.get("k", 10, up.fetch)
    assert not fresh.stale and fresh.value.startswith("v")


async def test_outage_is_not_hammered(clock: FakeClock) -> None:
    cache, up = make(clock), Upstream()
    await cache.get("k", 10, up.fetch)
    up.down = True
    await clock.advance(11)
    for _ in range(50):
        assert (await cache.get("k", 10, up.fetch)).stale
    assert up.calls == 2  # one failed attempt, then stale answers until retry_interval passes
    await clock.advance(1)
    assert (await cache.get("k", 10, up.fetch)).stale  # answered at once...
    await asyncio.sleep(0)
    assert up.calls == 3  # ...while one background probe checks the upstream
    up.down = False
    await clock.advance(1)
    assert (await cache.get("k", 10, up.fetch)).stale
    await asyncio.sleep(0)
    fresh = await cache.get("k", 10, up.fetch)
    assert not fresh.stale and fresh.value == "v4"


async def test_hanging_upstream_during_known_outage_does_not_block(clock: FakeClock) -> None:
    cache, up = make(clock), Upstream()
    await cache.get("k", 10, up.fetch)
    up.down = True
    await clock.advance(11)
    assert (await cache.get("k", 10, up.fetch)).stale  # the outage is now known
    up.gate = asyncio.Event()  # from here on the upstream hangs (a timeout in real life)
    await clock.advance(1)
    result = await asyncio.wait_for(cache.get("k", 10, up.fetch), timeout=1)
    assert result.stale and result.value == "v1"
    up.gate.set()


async def test_cold_miss_during_outage_is_503(clock: FakeClock) -> None:
    cache, up = make(clock), Upstream()
    up.down = True
    with pytest.raises(UpstreamUnavailableError):
        await cache.get("k", 10, up.fetch)


async def test_not_found_is_never_served_stale(clock: FakeClock) -> None:
    cache, up = make(clock), Upstream()
    await cache.get("k", 10, up.fetch)
    up.missing = True
    await clock.advance(11)
    with pytest.raises(NotFoundError):
        await cache.get("k", 10, up.fetch)
    assert len(cache) == 0
