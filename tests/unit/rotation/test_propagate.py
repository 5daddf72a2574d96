"""Consumer heartbeats (validation, holders, current flag); who is told of a promotion."""

from __future__ import annotations

from typing import Any

import pytest

from vaultside.auth.records import TokenInfo
from vaultside.clock import FakeClock
from vaultside.crypto.barrier import Barrier
from vaultside.errors import InvalidRequestError
from vaultside.kv.store import KVStore
from vaultside.rotation.propagate import ConsumerRegistry, parse_heartbeat
from vaultside.rotation.service import RotationService


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"consumer": "a b"}, "consumer"),
        ({"consumer": "c1", "kind": "robot"}, "kind"),
        ({"consumer": "c1", "holdings": {"../x": 1}}, "'..'"),
        ({"consumer": "c1", "holdings": {"app/db": "2"}}, "holdings"),
        ({"consumer": "c1", "holdings": {"app/db": True}}, "holdings"),
        ({"consumer": "c1", "extra": 1}, "extra: unknown field"),
        ([], "JSON object"),
    ],
)
def test_bad_heartbeats(body: Any, field: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_heartbeat(body, 0.0)
    assert field in str(info.value.public_messages())


async def test_holders_and_staleness(barrier: Barrier, clock: FakeClock) -> None:
    reg = ConsumerRegistry(barrier, clock, stale_after=60)
    await reg.heartbeat(parse_heartbeat({"consumer": "s1", "holdings": {"app/db": 3}}, clock.now()))
    await reg.heartbeat(
        parse_heartbeat(
            {"consumer": "p1", "kind": "plugin", "container": "web", "holdings": {"app/x": 1}},
            clock.now(),
        )
    )
    await clock.advance(61)
    await reg.heartbeat(parse_heartbeat({"consumer": "s2", "holdings": {"app/db": 4}}, clock.now()))
    holders = {h["consumer"]: h for h in await reg.holders("app/db")}
    assert set(holders) == {"s1", "s2"}
    assert holders["s1"]["version"] == 3 and holders["s1"]["stale"] is True
    assert holders["s2"]["version"] == 4 and holders["s2"]["stale"] is False


async def test_a_promotion_is_told_to_every_added_redelivery(
    service: RotationService, kv: KVStore, root: TokenInfo
) -> None:
    told: list[tuple[str, int]] = []

    class Recorder:
        """A ``rotation.base.Redelivery`` (the volume plugin's re-delivery is one, in inject)."""

        async def delivered(self, path: str, version: int) -> None:
            told.append((path, version))

    service.add_redelivery(Recorder())
    await kv.put("app/db", {"password": "old"})
    policy = {"every": "1h", "generator": {"kind": "password"}, "target": {"kind": "kv"}}
    await service.set_policy("app/db", policy, by=root)
    assert (await service.rotate_now("app/db")).version == 2
    assert told == [("app/db", 2)]
