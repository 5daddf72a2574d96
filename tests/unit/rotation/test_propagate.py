"""Consumer heartbeats (validation, holders, current flag) and reload-label parsing."""

from __future__ import annotations

from typing import Any

import pytest

from vaultside.clock import FakeClock
from vaultside.crypto.barrier import Barrier
from vaultside.errors import InvalidRequestError
from vaultside.rotation.propagate import ConsumerRegistry, parse_heartbeat
from vaultside.rotation.redeliver import reload_action


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


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        (None, ("none", None)),
        ("none", ("none", None)),
        ("restart", ("restart", None)),
        ("signal:HUP", ("signal", "SIGHUP")),
        ("SIGUSR1", ("signal", "SIGUSR1")),
        ("hup", ("signal", "SIGHUP")),
    ],
)
def test_reload_labels(label: str | None, expected: tuple[str, str | None]) -> None:
    assert reload_action(label) == expected


def test_bad_reload_label() -> None:
    with pytest.raises(InvalidRequestError, match="unknown signal"):
        reload_action("signal:NOPE")
