"""Two LeaseManagers (two servers) on one storage: one renewal leader, takeover on partition,
followers serve the leader's credentials, revocation only when no server still subscribes."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Sequence

from vaultside.broker.leases import Lease, LeaseManager
from vaultside.clock import FakeClock
from vaultside.errors import UpstreamUnavailableError
from vaultside.storage.base import Op, Record
from vaultside.storage.memory import MemoryStorage

from .conftest import FakeLeaseEngine

KEY = "database/creds/app"


class Link:
    """One server's connection to the shared storage; ``cut`` partitions it."""

    def __init__(self, shared: MemoryStorage) -> None:
        self.shared = shared
        self.cut = False

    def _check(self) -> None:
        if self.cut:
            raise UpstreamUnavailableError("storage is unreachable")

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def get(self, key: str) -> Record | None:
        self._check()
        return await self.shared.get(key)

    async def put(self, key: str, value: bytes, *, expect_revision: int | None = None) -> int:
        self._check()
        return await self.shared.put(key, value, expect_revision=expect_revision)

    async def delete(self, key: str, *, expect_revision: int | None = None) -> bool:
        self._check()
        return await self.shared.delete(key, expect_revision=expect_revision)

    async def list(self, prefix: str, *, after: str = "", limit: int | None = None) -> list[str]:
        self._check()
        return await self.shared.list(prefix, after=after, limit=limit)

    async def write_batch(self, ops: Sequence[Op]) -> None:
        self._check()
        await self.shared.write_batch(ops)

    async def try_lock(self, name: str, holder: str, ttl: float) -> bool:
        self._check()
        return await self.shared.try_lock(name, holder, ttl)

    async def unlock(self, name: str, holder: str) -> None:
        self._check()
        await self.shared.unlock(name, holder)


def server(
    name: str, engine: FakeLeaseEngine, storage: MemoryStorage, clock: FakeClock
) -> tuple[LeaseManager, Link]:
    link = Link(storage)
    return LeaseManager("b", engine, link, clock, lock_ttl=15, holder=name), link


@contextlib.asynccontextmanager
async def two_servers(
    engine: FakeLeaseEngine, storage: MemoryStorage, clock: FakeClock
) -> AsyncIterator[tuple[LeaseManager, Link, LeaseManager]]:
    """Servers ``a`` (with its storage link, to cut) and ``b``, both closed afterwards."""
    a, link_a = server("a", engine, storage, clock)
    b, _ = server("b", engine, storage, clock)
    try:
        yield a, link_a, b
    finally:
        await a.close()
        await b.close()


async def ignore(_: Lease) -> None:
    return None


async def test_only_the_leader_renews_and_followers_serve_its_lease(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    engine = FakeLeaseEngine(clock, ttl=60, max_ttl=1000)
    async with two_servers(engine, storage, clock) as (a, _, b):
        first = await a.acquire(KEY)
        assert (await b.acquire(KEY)).lease_id == first.lease_id
        assert a.leader and not b.leader and engine.issued == 1
        start = clock.now()
        await clock.advance(121)
        # One server's cadence (every 36-40 s: jittered, never late), not two: the follower never
        # renewed.
        times = [0.0, *(t - start for _, t in engine.renewals)]
        assert len(times) == 4 and all(36 <= b - a <= 40 for a, b in itertools.pairwise(times))
        got = await b.acquire(KEY)
        assert got.lease_id == first.lease_id and engine.issued == 1
        assert got.expires_at >= clock.now() + 30  # the follower re-read the renewed expiry


async def test_simultaneous_first_reads_install_one_lease(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    engine = FakeLeaseEngine(clock)
    async with two_servers(engine, storage, clock) as (a, _, b):
        await a.load()
        await b.load()
        got = await asyncio.gather(a.acquire(KEY), b.acquire(KEY))
        assert got[0].lease_id == got[1].lease_id
        # The loser gave its lease back; only the installed one is live upstream.
        assert len(engine.leases) == 1 and len(engine.revoked) == engine.issued - 1


async def test_partitioned_leader_loses_the_role_and_another_takes_over(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    engine = FakeLeaseEngine(clock, ttl=60, max_ttl=10_000)
    async with two_servers(engine, storage, clock) as (a, link_a, b):
        lease = await a.acquire(KEY)
        await b.acquire(KEY)
        await clock.advance(1)
        link_a.cut = True  # a still reaches OpenBao, not storage
        for _ in range(60):  # 300 s, five lease TTLs
            await clock.advance(5)
            assert engine.valid(lease.lease_id)
        assert b.leader and not a.leader
        times = [t for _, t in engine.renewals]
        assert len(times) >= 6
        assert all(later - earlier >= 10 for earlier, later in itertools.pairwise(times))  # once
        link_a.cut = False
        await clock.advance(5)
        assert not a.leader and b.leader  # healed: exactly one leader
        assert a.current(KEY) is not None and a.current(KEY).lease_id == lease.lease_id  # type: ignore[union-attr]


async def test_dead_leader_is_replaced_within_the_lock_ttl(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    engine = FakeLeaseEngine(clock, ttl=60, max_ttl=10_000)
    async with two_servers(engine, storage, clock) as (a, link_a, b):
        lease = await a.acquire(KEY)
        await b.load()
        link_a.cut = True
        await a.close()  # killed: nothing released
        held = await storage.lock_holder("b/lease-renewal")  # of the brokers' view (broker/)
        assert held is not None and held[0] == "a" and not b.leader
        await clock.advance(20)  # lock TTL 15 s plus one retry interval (5 s)
        assert b.leader
        await clock.advance(200)
        assert engine.valid(lease.lease_id) and engine.issued == 1


async def test_unsubscribe_on_one_server_keeps_the_lease_for_the_other(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    engine = FakeLeaseEngine(clock)
    async with two_servers(engine, storage, clock) as (a, _, b):
        lease = await a.acquire(KEY)
        await b.acquire(KEY)
        sub_a = await a.subscribe(KEY, ignore)
        sub_b = await b.subscribe(KEY, ignore)
        await a.unsubscribe(sub_a)
        assert engine.revoked == [] and engine.valid(lease.lease_id)
        await clock.advance(100)  # still renewed by the leader (a) for b's subscriber
        assert engine.valid(lease.lease_id)
        await b.unsubscribe(sub_b)
        assert engine.revoked == [lease.lease_id]
        # Nothing left but the record of who leads the lease renewal (GET /v1/sys/leaders).
        assert [k for k in storage.data if not k.startswith("cluster/leaders/")] == []
        await clock.advance(5)  # the leader's next pass forgets it too
        assert a.current(KEY) is None and b.current(KEY) is None


async def test_follower_subscriber_gets_the_leaders_replacement_in_time(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    engine = FakeLeaseEngine(clock, ttl=60, max_ttl=150)
    async with two_servers(engine, storage, clock) as (a, _, b):
        first = await a.acquire(KEY)  # a leads; nobody on a subscribes
        seen: list[tuple[str, bool]] = []

        async def on_new(lease: Lease) -> None:
            seen.append((lease.lease_id, engine.valid(first.lease_id)))

        await b.acquire(KEY)
        await b.subscribe(KEY, on_new)
        for _ in range(40):
            await clock.advance(5)
            held = b.current(KEY)
            assert held is not None and engine.valid(held.lease_id)
        # The leader replaced the capped lease because b subscribes; b got it while the
        # first credentials still worked.
        assert seen and seen[0][0] != first.lease_id and seen[0][1]
        assert engine.issued >= 2


async def test_lease_revoked_on_one_server_is_forgotten_not_reissued_by_the_leader(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    engine = FakeLeaseEngine(clock)
    async with two_servers(engine, storage, clock) as (a, _, b):
        lease = await a.acquire(KEY)
        await a.acquire(KEY)  # read again on the leader: it would replace it at max TTL
        await b.acquire(KEY)
        await b.unsubscribe(await b.subscribe(KEY, ignore))  # b's consumer came and went
        assert engine.revoked == [lease.lease_id]
        await clock.advance(400)
        assert engine.issued == 1 and a.current(KEY) is None and a.leases() == []


async def test_follower_subscriber_gets_new_credentials_after_a_revocation_elsewhere(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    engine = FakeLeaseEngine(clock)
    async with two_servers(engine, storage, clock) as (a, _, b):
        first = await a.acquire(KEY)
        seen: list[str] = []

        async def on_new(lease: Lease) -> None:
            seen.append(lease.lease_id)

        await b.acquire(KEY)
        await b.subscribe(KEY, on_new)
        await asyncio.sleep(0)  # let b's coordination loop start its (fake) sleep
        await a.revoke(KEY)  # e.g. raced with b's subscription
        engine.down = True
        await clock.advance(5)  # b notices, cannot issue yet
        assert seen == [] and b.current(KEY) is None
        engine.down = False
        await clock.advance(5)  # next pass: b issues and tells its subscriber
        assert len(seen) == 1 and seen[0] != first.lease_id and engine.valid(seen[0])
        assert (await a.acquire(KEY)).lease_id == seen[0]  # the leader serves and keeps it
        await clock.advance(100)
        assert engine.valid(seen[0])


async def test_lease_that_lapsed_during_a_takeover_is_reissued_to_subscribers_too(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    # Found under load (tests/integration/test_broker_replicas.py): the leader dies, the lease
    # lapses before the follower takes over, and a read on the follower issues new
    # credentials. The follower's subscribers must get them, not keep the dead ones.
    engine = FakeLeaseEngine(clock, ttl=10, max_ttl=10_000)
    async with two_servers(engine, storage, clock) as (a, link_a, b):
        first = await a.acquire(KEY)
        await b.acquire(KEY)
        seen: list[str] = []

        async def on_new(lease: Lease) -> None:
            seen.append(lease.lease_id)

        await b.subscribe(KEY, on_new)
        link_a.cut = True
        await a.close()  # killed: its lock holds for 15 s, the lease lives 10 s
        await clock.advance(12)
        assert not engine.valid(first.lease_id)
        got = await b.acquire(KEY)
        assert got.lease_id != first.lease_id and engine.valid(got.lease_id)
        assert seen == [got.lease_id]
        await clock.advance(30)  # b leads now and keeps the new lease; no second re-issue
        assert b.leader and seen[-1] == b.current(KEY).lease_id  # type: ignore[union-attr]
