"""Re-delivery (inject): reload-label parsing, and a promoted rotation wakes the pass."""

from __future__ import annotations

import asyncio

import pytest

from vaultside.clock import FakeClock
from vaultside.errors import InvalidRequestError
from vaultside.inject.redeliver import MountRefresher, reload_action
from vaultside.rotation.base import Redelivery


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


class Records:
    """The slice of ``VolumeManager`` a pass starts with: counts passes, nothing mounted."""

    def __init__(self) -> None:
        self.calls = 0

    def list(self) -> list[object]:
        self.calls += 1
        return []


async def test_a_promoted_rotation_starts_a_pass_before_the_next_poll() -> None:
    clock, records = FakeClock(), Records()
    refresher = MountRefresher(records, None, clock=clock, interval=3600)  # type: ignore[arg-type]
    redelivery: Redelivery = refresher  # what wiring hands to RotationService.add_redelivery
    task = asyncio.create_task(refresher.run())
    try:
        await clock.advance(0)
        assert records.calls == 1
        await redelivery.delivered("app/db", 2)
        for _ in range(20):  # let the woken loop run (no time passes)
            await asyncio.sleep(0)
        assert records.calls == 2  # woken, not an hour later
        await clock.advance(60)
        assert records.calls == 2  # and back to polling on the interval
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
