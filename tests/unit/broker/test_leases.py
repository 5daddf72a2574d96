"""LeaseManager on a fake clock: renewal at 2/3 TTL, replacement before max TTL, revocation,
persistence across a restart, outages."""

from __future__ import annotations

import asyncio
import itertools
import json

from vaultside.broker.leases import Lease, LeaseManager
from vaultside.clock import FakeClock
from vaultside.storage.memory import MemoryStorage

from .conftest import FakeLeaseEngine, leftovers

KEY = "database/creds/app"


def manager(engine: FakeLeaseEngine, storage: MemoryStorage, clock: FakeClock) -> LeaseManager:
    return LeaseManager("b", engine, storage, clock, retry_interval=2)


async def test_acquire_is_single_flight_and_shared(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    engine = FakeLeaseEngine(clock)
    leases = manager(engine, storage, clock)
    got = await asyncio.gather(*(leases.acquire(KEY) for _ in range(50)))
    assert engine.issued == 1
    assert len({lease.lease_id for lease in got}) == 1
    await leases.close()


async def test_renews_at_two_thirds_of_ttl(clock: FakeClock, storage: MemoryStorage) -> None:
    engine = FakeLeaseEngine(clock, ttl=60, max_ttl=1000)
    leases = manager(engine, storage, clock)
    lease = await leases.acquire(KEY)
    start = clock.now()
    await clock.advance(35)  # jitter renews up to 10% early (36 s), never late
    assert engine.renewals == []
    await clock.advance(6)
    (t1,) = [t - start for _, t in engine.renewals]
    assert 36 <= t1 <= 40
    await clock.advance(40)
    t1, t2 = [t - start for _, t in engine.renewals]
    assert 36 <= t2 - t1 <= 40
    assert engine.valid(lease.lease_id)
    await leases.close()


async def test_leases_issued_together_are_not_renewed_in_lockstep(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    engine = FakeLeaseEngine(clock, ttl=60, max_ttl=1000)
    leases = manager(engine, storage, clock)
    for i in range(8):
        await leases.acquire(f"{KEY}-{i}")
    start = clock.now()
    await clock.advance(41)
    times = [t - start for _, t in engine.renewals]
    assert len(times) == 8 and all(36 <= t <= 40 for t in times)
    assert len(set(times)) > 1  # spread by jitter, not one burst
    await leases.close()


async def test_replaced_before_max_ttl_and_subscribers_told(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    engine = FakeLeaseEngine(clock, ttl=60, max_ttl=150)
    leases = manager(engine, storage, clock)
    seen: list[Lease] = []

    async def on_new(lease: Lease) -> None:
        seen.append(lease)

    first = await leases.acquire(KEY)
    await leases.subscribe(KEY, on_new)
    for _ in range(40):
        await clock.advance(5)
        assert leases.current(KEY) is not None
        assert engine.valid(leases.current(KEY).lease_id)  # type: ignore[union-attr]
    # 200 s in: the first lease hit its 150 s max TTL, a replacement came before it expired.
    assert seen and seen[0].lease_id != first.lease_id
    assert seen[0].data["username"] != first.data["username"]
    assert engine.issued >= 2
    await leases.close()


async def test_unsubscribed_lease_is_dropped_not_replaced(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    engine = FakeLeaseEngine(clock, ttl=60, max_ttl=100)
    leases = manager(engine, storage, clock)
    await leases.acquire(KEY)
    await clock.advance(200)
    assert engine.issued == 1
    assert leases.current(KEY) is None
    assert leftovers(storage) == {}
    await leases.close()


async def test_lease_read_again_is_replaced_ahead_of_expiry_for_pollers(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    engine = FakeLeaseEngine(clock, ttl=60, max_ttl=100)
    leases = manager(engine, storage, clock)
    first = prev = await leases.acquire(KEY)
    handovers = 0
    for _ in range(40):  # a consumer polling every 5 s, like the plugin's re-delivery loop
        await clock.advance(5)
        got = await leases.acquire(KEY)
        assert engine.valid(got.lease_id)
        if got.lease_id != prev.lease_id:
            # New credentials reached the poller while the old ones still worked upstream.
            assert engine.valid(prev.lease_id)
            assert got.data["username"] != prev.data["username"]
            handovers += 1
        prev = got
    assert handovers >= 2 and got.lease_id != first.lease_id
    issued = engine.issued
    await clock.advance(300)  # the poller went away: the lease it last read is replaced once,
    assert engine.issued <= issued + 1  # and that unread replacement lapses, nothing new
    settled = engine.issued
    await clock.advance(300)
    assert engine.issued == settled and leases.current(KEY) is None and leftovers(storage) == {}
    await leases.close()


async def test_last_unsubscribe_revokes(clock: FakeClock, storage: MemoryStorage) -> None:
    engine = FakeLeaseEngine(clock)
    leases = manager(engine, storage, clock)
    lease = await leases.acquire(KEY)

    async def ignore(_: Lease) -> None:
        return None

    a, b = await leases.subscribe(KEY, ignore), await leases.subscribe(KEY, ignore)
    await leases.unsubscribe(a)
    assert engine.revoked == []
    await leases.unsubscribe(b)
    assert engine.revoked == [lease.lease_id]
    assert leases.current(KEY) is None and leftovers(storage) == {}
    await leases.close()


async def test_survives_restart_through_storage(clock: FakeClock, storage: MemoryStorage) -> None:
    engine = FakeLeaseEngine(clock, ttl=60, max_ttl=1000)
    before = manager(engine, storage, clock)
    lease = await before.acquire(KEY)
    await before.close()
    assert len(leftovers(storage)) == 1
    record = json.loads(next(iter(leftovers(storage).values())).value)
    assert record["lease_id"] == lease.lease_id

    after = manager(engine, storage, clock)
    assert await after.load() == 1
    await asyncio.sleep(0)  # let the renewal task start its (fake) sleep
    again = await after.acquire(KEY)
    assert again.lease_id == lease.lease_id and engine.issued == 1
    await clock.advance(41)
    assert engine.renewals and engine.renewals[-1][0] == lease.lease_id
    await after.close()


async def test_expired_persisted_lease_is_discarded(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    engine = FakeLeaseEngine(clock, ttl=60)
    before = manager(engine, storage, clock)
    await before.acquire(KEY)
    await before.close()
    clock._now += 120  # time passes while vaultside is down
    after = manager(engine, storage, clock)
    assert await after.load() == 0
    assert leftovers(storage) == {}
    await after.close()


async def test_outage_retries_renewal_until_upstream_returns(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    engine = FakeLeaseEngine(clock, ttl=60, max_ttl=1000)
    leases = manager(engine, storage, clock)
    lease = await leases.acquire(KEY)
    engine.down = True
    await clock.advance(45)
    assert engine.renewals == []
    engine.down = False
    await clock.advance(3)
    assert engine.renewals and engine.valid(lease.lease_id)
    await leases.close()


async def test_lost_lease_is_replaced_for_subscribers(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    engine = FakeLeaseEngine(clock, ttl=60, max_ttl=1000)
    leases = manager(engine, storage, clock)
    first = await leases.acquire(KEY)
    seen: list[str] = []

    async def on_new(lease: Lease) -> None:
        seen.append(lease.lease_id)

    await leases.subscribe(KEY, on_new)
    del engine.leases[first.lease_id]  # revoked behind our back
    await clock.advance(41)
    assert len(seen) == 1 and seen[0] != first.lease_id
    await leases.close()


async def test_expired_during_outage_is_replaced_for_subscribers_on_recovery(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    engine = FakeLeaseEngine(clock, ttl=60, max_ttl=1000)
    leases = manager(engine, storage, clock)
    first = await leases.acquire(KEY)
    seen: list[str] = []

    async def on_new(lease: Lease) -> None:
        seen.append(lease.lease_id)

    await leases.subscribe(KEY, on_new)
    engine.down = True
    await clock.advance(90)  # renewals fail until the lease runs out
    assert seen == [] and leases.current(KEY) is None
    engine.down = False
    await clock.advance(3)
    assert len(seen) == 1 and seen[0] != first.lease_id
    assert leases.current(KEY) is not None
    await leases.close()


async def test_late_subscriber_to_a_capped_lease_still_gets_a_replacement(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    engine = FakeLeaseEngine(clock, ttl=60, max_ttl=100)
    leases = manager(engine, storage, clock)
    first = await leases.acquire(KEY)
    await clock.advance(81)  # renewed at 40 and at 80 (capped at the 100 s max TTL)
    assert leases.current(KEY) is not None and leases.current(KEY).capped  # type: ignore[union-attr]
    seen: list[str] = []

    async def on_new(lease: Lease) -> None:
        seen.append(lease.lease_id)

    await leases.subscribe(KEY, on_new)
    await asyncio.sleep(0)  # let the rescheduled task start its (fake) sleep
    await clock.advance(18)  # still before the first lease's max TTL
    assert len(seen) == 1 and seen[0] != first.lease_id
    await leases.close()


async def test_revoke_during_outage_does_not_fail_the_consumer(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    engine = FakeLeaseEngine(clock)
    leases = manager(engine, storage, clock)
    await leases.acquire(KEY)

    async def ignore(_: Lease) -> None:
        return None

    sub = await leases.subscribe(KEY, ignore)
    engine.down = True
    await leases.unsubscribe(sub)
    assert leases.current(KEY) is None and leftovers(storage) == {}
    await leases.close()


async def test_reads_never_get_less_than_min_remaining_and_later_leases_replace_early(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    """Issue 16: no read gets a lease with less than ``min_remaining`` seconds of life; once
    the max TTL is known, leases are replaced a third of it (100 s) ahead of their end. (The
    first lease learns the max TTL only when a renewal is capped, at least (1 - 2/3) x 60 - 1 =
    19 s before its end, so the minimum here is 15 s.)"""
    engine = FakeLeaseEngine(clock, ttl=60, max_ttl=300)
    leases = LeaseManager("b", engine, storage, clock, min_remaining=15.0)
    ends: dict[str, float] = {}
    for _ in range(200):  # 1000 s: several leases
        lease = await leases.acquire(KEY)
        ends.setdefault(lease.lease_id, engine.leases[lease.lease_id][1])
        assert ends[lease.lease_id] - clock.now() >= 15.0
        assert leases.remaining_life(lease) <= ends[lease.lease_id] - clock.now()
        # Every lease handed out stays valid upstream until its end, replaced or not.
        for lease_id, end in ends.items():
            assert engine.valid(lease_id) or end <= clock.now(), (lease_id, end)
        await clock.advance(5)
    issued = sorted(end - 300 for end in ends.values())
    assert len(issued) >= 4
    # After the first, each lease is issued 200 s after the one before: 100 s of overlap.
    assert all(abs(b - a - 200) <= 5 for a, b in itertools.pairwise(issued[1:]))
    assert all(lease.max_ttl for lease in leases.leases())
    await leases.close()


async def test_lease_revoked_upstream_is_dropped_and_the_next_read_issues_anew(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    engine = FakeLeaseEngine(clock, ttl=60, max_ttl=300)
    leases = LeaseManager("b", engine, storage, clock, verify_interval=1.0)
    first = await leases.acquire(KEY)
    await engine.revoke(first.lease_id)  # as `bao lease revoke` would
    assert (await leases.acquire(KEY)).lease_id == first.lease_id  # looked up < 1 s ago
    await clock.advance(1.5)
    second = await leases.acquire(KEY)
    assert second.lease_id != first.lease_id and engine.valid(second.lease_id)
    await leases.close()


async def test_lease_revoked_upstream_reaches_subscribers_through_the_next_read(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    engine = FakeLeaseEngine(clock, ttl=60, max_ttl=300)
    leases = LeaseManager("b", engine, storage, clock, verify_interval=1.0)
    seen: list[Lease] = []

    async def on_new(lease: Lease) -> None:
        seen.append(lease)

    first = await leases.acquire(KEY)
    await leases.subscribe(KEY, on_new)
    await engine.revoke(first.lease_id)
    await clock.advance(1.5)
    second = await leases.acquire(KEY)
    assert second.lease_id != first.lease_id
    assert [lease.lease_id for lease in seen] == [second.lease_id]
    await leases.close()


class SlowFakeLeaseEngine(FakeLeaseEngine):
    """Upstream answers arrive ``delay`` seconds after the upstream acted (a loaded host)."""

    def __init__(self, clock: FakeClock, delay: float, **kw: float) -> None:
        super().__init__(clock, **kw)
        self.delay = delay

    async def issue(self, key: str):  # type: ignore[no-untyped-def]
        secret = await super().issue(key)
        await self.clock.advance(self.delay)
        return secret

    async def renew(self, lease_id: str, increment: float) -> tuple[float, bool]:
        granted = await super().renew(lease_id, increment)
        await self.clock.advance(self.delay)
        return granted


async def test_a_slow_upstream_answer_never_overstates_a_lease_s_life(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    # The lease's life is counted from when the request was sent, not from when the answer
    # came back: under load the answer can be seconds late, and a reader would otherwise be
    # told (and served) more life than the credentials have (seen under stress-ng in CI).
    engine = SlowFakeLeaseEngine(clock, delay=2.0, ttl=60, max_ttl=1000)
    leases = manager(engine, storage, clock)
    lease = await leases.acquire(KEY)
    assert lease.expires_at <= engine.leases[lease.lease_id][0]
    await clock.advance(45)  # renewed (answer 2 s late)
    assert engine.renewals
    current = leases.current(KEY)
    assert current is not None
    assert current.expires_at <= engine.leases[current.lease_id][0]
    await leases.close()


async def test_the_first_lease_keeps_min_remaining_before_its_max_ttl_is_known(
    clock: FakeClock, storage: MemoryStorage
) -> None:
    # Until a capped renewal reveals the max TTL, only the current TTL is certain: such a lease
    # is renewed early enough to keep min_remaining, and served only while it has it. (Before,
    # the first lease was served down to whatever was left when the capped renewal came back:
    # as little as 19 s here, below min_remaining = 40 s; seen as 1.5 s under stress-ng with a
    # 6 s TTL.)
    engine = FakeLeaseEngine(clock, ttl=60, max_ttl=300)
    leases = LeaseManager("b", engine, storage, clock, min_remaining=40.0)
    ends: dict[str, float] = {}
    for _ in range(200):  # 600 s: the first lease's whole life and its successors
        lease = await leases.acquire(KEY)
        ends.setdefault(lease.lease_id, engine.leases[lease.lease_id][1])
        assert ends[lease.lease_id] - clock.now() >= 40.0, lease.lease_id
        assert leases.remaining_life(lease) <= ends[lease.lease_id] - clock.now()
        for lease_id, end in ends.items():
            assert engine.valid(lease_id) or end <= clock.now(), (lease_id, end)
        await clock.advance(3)
    assert len(ends) >= 2
    await leases.close()
