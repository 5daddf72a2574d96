"""The periodic token tidier: runs on a fake clock, on the lease holder only."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from vaultside.auth.tidy import TIDY_LEASE, TokenTidier
from vaultside.auth.tokens import TokenStore
from vaultside.clock import FakeClock
from vaultside.storage.memory import MemoryStorage
from vaultside.storage.sqlite import SqliteStorage
from vaultside.wiring.keyspace import view


async def _until(cond: Callable[[], bool]) -> None:
    """Let the event loop run (no wall-clock sleeping) until ``cond`` holds."""
    for _ in range(10_000):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_loop_tidies_every_interval_and_releases_its_lease(clock: FakeClock) -> None:
    storage = MemoryStorage()
    auth = view(storage, "tokens")  # as wiring builds them: keys and lease under auth/
    tokens = TokenStore(auth, clock=clock)
    await tokens.create_root()
    for _ in range(3):
        await tokens.create(parent=None, policies=["a"], ttl=50)
    a = TokenTidier(tokens, auth, clock=clock, interval=100, holder="a")
    b = TokenTidier(tokens, auth, clock=clock, interval=100, holder="b")
    await a.start()
    await b.start()
    await a.start()  # idempotent
    await asyncio.sleep(0)  # both loops are now asleep until t=100
    await clock.advance(40)
    assert a.removed_total == 0 and len(await storage.list("auth/token/")) == 4
    await clock.advance(70)  # t=110: the tokens expired at 50, the first tidy ran at 100
    await _until(lambda: a.removed_total + b.removed_total == 3)
    assert len(await storage.list("auth/token/")) == 1
    assert [a.leader, b.leader].count(True) == 1
    leader, other = (a, b) if a.leader else (b, a)
    await tokens.create(parent=None, policies=["a"], ttl=10)
    await leader.close()
    await leader.close()  # idempotent
    assert await auth.lock_holder(TIDY_LEASE) is None  # released on the way out
    assert await storage.lock_holder("auth/token-tidy") is None
    await clock.advance(100)  # t=210: the other server takes over at once
    await _until(lambda: other.removed_total == 1)
    assert other.leader
    await other.close()


async def test_only_the_lease_holder_tidies_until_its_lease_lapses(
    tmp_path: Path, clock: FakeClock
) -> None:
    storage = SqliteStorage(tmp_path / "tidy.db", clock=clock)
    await storage.open()
    try:
        auth = view(storage, "tokens")
        tokens = TokenStore(auth, clock=clock)
        await tokens.create(parent=None, policies=["a"], ttl=5)
        a = TokenTidier(tokens, auth, clock=clock, interval=60, holder="a")
        b = TokenTidier(tokens, auth, clock=clock, interval=60, holder="b")
        await clock.advance(10)
        assert await a.tick() == 1
        await tokens.create(parent=None, policies=["a"], ttl=5)
        await clock.advance(10)
        assert await b.tick() is None and not b.leader  # a holds the lease (2 intervals)
        assert len(await storage.list("auth/token/")) == 1
        assert await a.tick() == 1  # renews
        await clock.advance(119)
        assert await b.tick() is None
        await clock.advance(2)  # a stopped renewing: its lease lapsed
        assert await b.tick() == 0 and b.leader
        assert await a.tick() is None and not a.leader
    finally:
        await storage.close()


def test_interval_must_be_positive(clock: FakeClock) -> None:
    storage = MemoryStorage()
    with pytest.raises(ValueError, match="positive"):
        TokenTidier(TokenStore(storage, clock=clock), storage, clock=clock, interval=0)
