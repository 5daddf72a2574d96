"""The scheduler on a fake clock: every, cron, jitter, window, catch-up, grace, one leader."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.stores import rotation_service
from vaultside.auth.records import TokenInfo
from vaultside.clock import FakeClock
from vaultside.crypto.barrier import Barrier
from vaultside.kv.store import KVStore
from vaultside.rotation.authority import RotationAuthority
from vaultside.rotation.service import RotationService

from .conftest import START


def policy(**kw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"generator": {"kind": "bytes"}, "target": {"kind": "kv"}}
    doc.update(kw)
    return doc


async def version(kv: KVStore, path: str) -> int:
    return (await kv.read_metadata(path)).current_version


async def test_every_runs_when_due(
    service: RotationService, kv: KVStore, clock: FakeClock, root: TokenInfo
) -> None:
    await service.set_policy("a", policy(every="1h"), by=root)
    sched = service.scheduler
    assert await sched.tick() == sched.lease_ttl / 3  # nothing due yet
    assert sched.planned("a") == START + 3600
    await clock.advance(3599)
    await sched.tick()
    assert not await kv.exists("a")
    await clock.advance(1)
    await sched.tick()
    assert await version(kv, "a") == 1
    assert sched.planned("a") == START + 7200
    await clock.advance(3600)
    await sched.tick()
    assert await version(kv, "a") == 2


async def test_tick_returns_the_delay_to_the_next_run(
    service: RotationService, clock: FakeClock, root: TokenInfo
) -> None:
    await service.set_policy("a", policy(every="1h"), by=root)
    await service.scheduler.tick()
    await clock.advance(3600 - 4)
    assert await service.scheduler.tick() == 4


async def test_cron_schedule(
    service: RotationService, kv: KVStore, clock: FakeClock, root: TokenInfo
) -> None:
    # START is 2023-11-14 22:13:20 UTC; "0 3 * * *" is next due 2023-11-15 03:00.
    await service.set_policy("c", policy(cron="0 3 * * *"), by=root)
    await service.scheduler.tick()
    due = datetime(2023, 11, 15, 3, 0, tzinfo=UTC).timestamp()
    assert service.scheduler.planned("c") == due
    await clock.advance(due - START)
    await service.scheduler.tick()
    assert await version(kv, "c") == 1
    assert service.scheduler.planned("c") == due + 86400


async def test_jitter_stays_within_bounds(
    service: RotationService, kv: KVStore, clock: FakeClock, root: TokenInfo
) -> None:
    draws = iter([0.0, 0.999, 0.25])
    service.engine._jitter = lambda: next(draws)
    await service.set_policy("j", policy(every="1h", jitter="10m"), by=root)
    assert (await service.store.get_state("j")).next_run == START + 3600
    await service.set_policy("j", policy(every="1h", jitter="10m"), by=root)
    assert (await service.store.get_state("j")).next_run == START + 3600 + 599.4
    await service.set_policy("j", policy(every="1h", jitter="10m"), by=root)
    assert (await service.store.get_state("j")).next_run == START + 3600 + 150


async def test_window_postpones_to_the_next_opening(
    service: RotationService, kv: KVStore, clock: FakeClock, root: TokenInfo
) -> None:
    # Every hour, but only 02:00-03:00 UTC: the next run is 2023-11-15 02:00.
    await service.set_policy(
        "w", policy(every="1h", window={"start": "02:00", "end": "03:00"}), by=root
    )
    await service.scheduler.tick()
    opening = datetime(2023, 11, 15, 2, 0, tzinfo=UTC).timestamp()
    assert service.scheduler.planned("w") == opening
    await clock.advance(opening - START)
    await service.scheduler.tick()
    assert await version(kv, "w") == 1
    assert service.scheduler.planned("w") == opening + 86400  # 03:00 is already closed


async def test_catch_up_runs_missed_rotations_once(
    kv: KVStore, barrier: Barrier, clock: FakeClock, root: TokenInfo, authority: RotationAuthority
) -> None:
    first = rotation_service(kv, barrier, clock, authority)
    await first.set_policy("m", policy(every="1h"), by=root)
    await first.set_policy("n", policy(every="1h"), by=root)
    # vaultside is down for 10 hours, then a new process starts.
    await clock.advance(10 * 3600)
    second = rotation_service(kv, barrier, clock, authority)
    await second.scheduler.tick()
    assert await version(kv, "m") == 1 and await version(kv, "n") == 1
    assert second.scheduler.planned("m") == clock.now() + 3600
    await second.scheduler.tick()
    assert await version(kv, "m") == 1  # once, not ten times


async def test_only_one_scheduler_leads(
    kv: KVStore, barrier: Barrier, clock: FakeClock, root: TokenInfo, authority: RotationAuthority
) -> None:
    a = rotation_service(kv, barrier, clock, authority)
    b = rotation_service(kv, barrier, clock, authority)
    await a.set_policy("x", policy(every="1h"), by=root)
    await a.scheduler.tick()
    await b.scheduler.tick()
    assert a.scheduler.leader and not b.scheduler.leader
    await clock.advance(3600)
    await a.scheduler.tick()
    await b.scheduler.tick()
    assert await version(kv, "x") == 1
    # When the leader stops and its lease is released, the other one takes over.
    await barrier.unlock("rotation/scheduler", a.engine.holder)
    await b.scheduler.tick()
    assert b.scheduler.leader


async def test_policy_change_is_picked_up(
    service: RotationService, clock: FakeClock, root: TokenInfo
) -> None:
    await service.set_policy("p", policy(every="1h"), by=root)
    await service.scheduler.tick()
    await service.set_policy("p", policy(every="2h"), by=root)
    await service.scheduler.tick()
    assert service.scheduler.planned("p") == START + 7200
    await service.delete_policy("p")
    await service.scheduler.tick()
    assert service.scheduler.planned("p") is None


async def test_grace_expiry_deletes_the_previous_version(
    service: RotationService, kv: KVStore, clock: FakeClock, root: TokenInfo
) -> None:
    await kv.put("g", {"value": "old"})
    await service.set_policy("g", policy(every="1d", grace="10m"), by=root)
    await service.rotate_now("g")
    await service.scheduler.tick()
    assert (await kv.get("g", version=1)).data == {"value": "old"}
    await clock.advance(600)
    await service.scheduler.tick()
    meta = await kv.read_metadata("g")
    assert meta.versions[1].deletion_time is not None and meta.current_version == 2
    assert (await service.store.get_state("g")).grace_until is None


async def test_disabled_policy_does_not_run(
    service: RotationService, kv: KVStore, clock: FakeClock, root: TokenInfo
) -> None:
    await service.set_policy("d", policy(every="1h", enabled=False), by=root)
    await service.scheduler.tick()
    await clock.advance(7200)
    await service.scheduler.tick()
    assert not await kv.exists("d")


async def test_cron_macro_on_the_fake_clock(
    service: RotationService, kv: KVStore, clock: FakeClock, root: TokenInfo
) -> None:
    # START is 2023-11-14 22:13:20 UTC; "@hourly" is next due at 23:00, then every hour.
    await service.set_policy("h", policy(cron="@hourly"), by=root)
    await service.scheduler.tick()
    due = datetime(2023, 11, 14, 23, 0, tzinfo=UTC).timestamp()
    assert service.scheduler.planned("h") == due
    await clock.advance(due - START)
    await service.scheduler.tick()
    assert await version(kv, "h") == 1
    assert service.scheduler.planned("h") == due + 3600
