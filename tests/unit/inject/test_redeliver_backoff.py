"""The plugin's re-delivery loop backs off (full jitter) while the server is unavailable."""

from __future__ import annotations

import asyncio

from vaultside.clock import FakeClock
from vaultside.errors import NotFoundError, UpstreamUnavailableError
from vaultside.inject.redeliver import MountRefresher


class Records:
    """The slice of ``VolumeManager`` a pass starts with; fails while ``error`` is set."""

    def __init__(self, error: Exception | None) -> None:
        self.error, self.calls = error, 0

    def list(self) -> list[object]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return []


async def _passes_in_a_minute(error: Exception | None) -> int:
    clock, records = FakeClock(), Records(error)
    refresher = MountRefresher(records, None, clock=clock, interval=0.5)  # type: ignore[arg-type]
    task = asyncio.create_task(refresher.run())
    for _ in range(600):
        await clock.advance(0.1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return records.calls


async def test_unavailable_server_is_asked_with_backoff_not_every_interval() -> None:
    down = await _passes_in_a_minute(UpstreamUnavailableError("cannot reach vaultside"))
    assert down < 30  # every 0.5 s would be 120 passes
    healthy = await _passes_in_a_minute(None)
    assert healthy >= 120  # jitter only shortens the period
    refused = await _passes_in_a_minute(NotFoundError("x"))  # a 4xx is not backed off
    assert refused >= 120
