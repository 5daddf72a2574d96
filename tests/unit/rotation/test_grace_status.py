"""Grace queue (grace >= every, manual rotations, restarts), honest status, consumer expiry."""

from __future__ import annotations

from typing import Any

from tests.stores import rotation_service
from vaultside.auth.tokens import TokenInfo
from vaultside.clock import FakeClock
from vaultside.crypto.barrier import Barrier
from vaultside.kv.store import KVStore
from vaultside.rotation.authority import RotationAuthority
from vaultside.rotation.propagate import Consumer
from vaultside.rotation.service import RotationService
from vaultside.rotation.state import RotationState
from vaultside.wiring.keyspace import view
from vaultside.wiring.rotation import target_factory

from .conftest import START

HOUR = 3600.0


def policy(**kw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"generator": {"kind": "bytes"}, "target": {"kind": "kv"}}
    doc.update(kw)
    return doc


async def deleted(kv: KVStore, path: str) -> set[int]:
    """The versions of ``path`` that are soft-deleted."""
    meta = await kv.read_metadata(path)
    return {v for v, m in meta.versions.items() if m.deletion_time is not None}


def new_service(
    kv: KVStore, barrier: Barrier, clock: FakeClock, authority: RotationAuthority
) -> RotationService:
    svc = rotation_service(kv, barrier, clock, authority)
    svc.engine._jitter = lambda: 0.0
    return svc


async def test_grace_longer_than_every_deletes_each_version_on_time_across_a_restart(
    kv: KVStore, barrier: Barrier, clock: FakeClock, authority: RotationAuthority, root: TokenInfo
) -> None:
    # Rotate every hour, keep each old version for 3 hours: at any time three are in grace.
    await kv.put("g", {"value": "v1"})
    first = new_service(kv, barrier, clock, authority)
    await first.set_policy("g", policy(every="1h", grace="3h"), by=root)
    await first.scheduler.tick()
    await clock.advance(HOUR)  # +1h: v2 (v1 due at +4h)
    await first.scheduler.tick()
    await clock.advance(HOUR)  # +2h: v3 (v2 due at +5h)
    await first.scheduler.tick()
    assert (await kv.read_metadata("g")).current_version == 3
    # The server stops (releasing its lease) and another one starts on the same store.
    await barrier.unlock("rotation/scheduler", first.engine.holder)
    second = new_service(kv, barrier, clock, authority)
    await clock.advance(HOUR)  # +3h: v4 (v3 due at +6h)
    await second.scheduler.tick()
    assert second.scheduler.leader
    assert await deleted(kv, "g") == set()
    await clock.advance(HOUR - 1)  # one second before v1's deadline
    await second.scheduler.tick()
    assert await deleted(kv, "g") == set()
    await clock.advance(1)  # +4h: v1's grace ends (and v5 is made)
    await second.scheduler.tick()
    assert await deleted(kv, "g") == {1}
    status = await second.status("g")
    assert [g["version"] for g in status["grace"]] == [2, 3, 4]  # type: ignore[index]
    await clock.advance(HOUR)  # +5h
    await second.scheduler.tick()
    assert await deleted(kv, "g") == {1, 2}
    await clock.advance(HOUR)  # +6h
    await second.scheduler.tick()
    assert await deleted(kv, "g") == {1, 2, 3}
    meta = await kv.read_metadata("g")
    assert meta.current_version == 7 and meta.current_version not in await deleted(kv, "g")
    state = await second.store.get_state("g")
    assert state.grace_until == START + 9 * HOUR  # v6, made at +6h, is the newest in grace


async def test_manual_rotations_inside_a_grace_period_keep_their_own_deadlines(
    service: RotationService, kv: KVStore, clock: FakeClock, root: TokenInfo
) -> None:
    await kv.put("m", {"value": "v1"})
    await service.set_policy("m", policy(every="1d", grace="10m"), by=root)
    await service.rotate_now("m")  # v1 due at +10m
    await clock.advance(300)
    await service.rotate_now("m")  # v2 due at +15m
    await service.scheduler.tick()
    await clock.advance(300)
    await service.scheduler.tick()
    assert await deleted(kv, "m") == {1}
    await clock.advance(299)
    await service.scheduler.tick()
    assert await deleted(kv, "m") == {1}
    await clock.advance(1)
    await service.scheduler.tick()
    assert await deleted(kv, "m") == {1, 2}
    assert (await service.store.get_state("m")).grace_until is None
    assert (await service.status("m"))["grace"] == []


async def test_a_state_from_before_the_grace_queue_still_expires(
    service: RotationService, kv: KVStore, clock: FakeClock, root: TokenInfo
) -> None:
    await kv.put("old", {"value": "v1"})
    await kv.put("old", {"value": "v2"})
    await service.set_policy("old", policy(every="1d"), by=root)
    state = await service.store.get_state("old")
    state.version, state.previous_version, state.grace_until = 2, 1, START + 60
    await service.store.put_state("old", state)
    await service.scheduler.tick()
    await clock.advance(60)
    await service.scheduler.tick()
    assert await deleted(kv, "old") == {1}


async def test_status_current_is_the_store_s_current_version(
    service: RotationService, kv: KVStore, clock: FakeClock, root: TokenInfo
) -> None:
    await kv.put("s", {"value": "v1"})
    await service.set_policy("s", policy(every="1d"), by=root)
    await service.heartbeat(Consumer("sc-1", "sidecar", None, clock.now(), {"s": 1}))
    # Before the first rotation: the secret is at version 1 and the sidecar holds it.
    status = await service.status("s")
    assert status["consumers"][0]["current"] is True  # type: ignore[index]
    assert status["current_version"] == 1
    await service.rotate_now("s")
    await service.heartbeat(Consumer("sc-1", "sidecar", None, clock.now(), {"s": 2}))
    # A manual write after the rotation: the store is at 3, the sidecar's 2 is not current.
    await kv.put("s", {"value": "by hand"})
    status = await service.status("s")
    assert status["current_version"] == 3
    assert status["consumers"][0]["current"] is False  # type: ignore[index]


async def test_status_of_a_path_without_a_policy_lists_its_consumers(
    service: RotationService, kv: KVStore, clock: FakeClock, root: TokenInfo
) -> None:
    await kv.put("plain", {"value": "x"})
    await service.heartbeat(Consumer("sc-2", "sidecar", "app", clock.now(), {"plain": 1}))
    status = await service.status("plain")
    assert status["policy"] is None and status["current_version"] == 1
    consumers = status["consumers"]
    assert isinstance(consumers, list) and consumers[0]["consumer"] == "sc-2"
    assert consumers[0]["current"] is True and consumers[0]["state"] == "live"
    assert RotationState().to_json() == status["state"]


async def test_a_silent_consumer_is_shown_gone_then_forgotten_after_the_ttl(
    kv: KVStore, barrier: Barrier, clock: FakeClock, authority: RotationAuthority
) -> None:
    svc = RotationService(
        kv,
        view(barrier, "rotation"),
        target_factory(clock),
        authority=authority,
        clock=clock,
        schedule=False,
        consumer_ttl=3600,
    )
    await kv.put("c", {"value": "x"})
    await svc.heartbeat(Consumer("plugin-abc", "plugin", "web", clock.now(), {"c": 1}))
    await svc.heartbeat(Consumer("sc-live", "sidecar", None, clock.now(), {"c": 1}))
    await clock.advance(121)
    await svc.heartbeat(Consumer("sc-live", "sidecar", None, clock.now(), {"c": 1}))
    states = {c["consumer"]: c["state"] for c in (await svc.status("c"))["consumers"]}  # type: ignore[attr-defined]
    assert states == {"plugin-abc": "gone", "sc-live": "live"}
    await clock.advance(3600 - 121)
    await svc.heartbeat(Consumer("sc-live", "sidecar", None, clock.now(), {"c": 1}))
    await clock.advance(1)
    consumers = (await svc.status("c"))["consumers"]
    assert [c["consumer"] for c in consumers] == ["sc-live"]  # type: ignore[attr-defined]
    assert await barrier.get("rotation/consumers/plugin-abc") is None
