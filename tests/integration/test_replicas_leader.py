"""Scheduler leader election across servers: kill -9 the leader, another takes over.

Two servers on one PostgreSQL, ``rotation.lease_ttl = 3``. A kv rotation policy runs every
60 s (the shortest schedule a policy allows). The leader rotates once, is SIGKILLed, the
other server holds the lease within ``lease_ttl`` plus one tick and runs the next rotation:
versions go 1 → 2 → 3, each run is journaled once, none is repeated or lost.
"""

from __future__ import annotations

import asyncio
import re
import time

import aiohttp
import pytest

from .services.vaultside_server import VaultsideServer
from .test_replicas_cluster import Replicas, call, http, replicas

__all__ = ["http", "replicas"]  # fixtures used by this module

pytestmark = pytest.mark.timeout(300)

LEASE_TTL = 3.0
_LEADER = re.compile(r"^vaultside_rotation_scheduler_leader (\S+)$", re.M)


async def is_leader(http: aiohttp.ClientSession, server: VaultsideServer) -> bool | None:
    """The server's own view from ``/metrics``; None if it does not answer."""
    try:
        async with http.get(f"{server.addr}/metrics") as resp:
            match = _LEADER.search(await resp.text())
    except (aiohttp.ClientError, OSError):
        return None
    return match is not None and float(match.group(1)) == 1.0


async def leaders(http: aiohttp.ClientSession, servers: list[VaultsideServer]) -> list[int]:
    """Indexes of the servers that say they lead."""
    views = await asyncio.gather(*(is_leader(http, s) for s in servers))
    return [i for i, v in enumerate(views) if v]


async def wait_for(what: str, timeout: float, check: object) -> float:
    """Poll the async predicate ``check`` until true; seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await check():  # type: ignore[operator]
            return time.monotonic() - start
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def current_version(http: aiohttp.ClientSession, server: VaultsideServer) -> int:
    status, body = await call(http, server, "GET", "secrets/app/rotated")
    assert status == 200, body
    return int(body["metadata"]["version"])


async def test_killed_leader_is_replaced_and_no_rotation_runs_twice_or_is_lost(
    replicas: Replicas, http: aiohttp.ClientSession
) -> None:
    servers = replicas.start(2, VAULTSIDE_ROTATION__LEASE_TTL=LEASE_TTL)
    await wait_for("one leader", 2 * LEASE_TTL, lambda: _one_leader(http, servers))
    (lead,) = await leaders(http, servers)
    leader, follower = servers[lead], servers[1 - lead]

    assert (await call(http, follower, "PUT", "secrets/app/rotated", {"data": {"k": "x"}}))[
        0
    ] == 200
    policy = {
        "every": 60,
        "generator": {"kind": "password", "length": 24},
        "target": {"kind": "kv"},
    }
    status, body = await call(http, follower, "PUT", "rotation/policies/app/rotated", policy)
    assert status == 200, body

    # The leader (not the server that got the policy) runs the first rotation.
    await wait_for("rotation 1", 90, lambda: _version_is(http, follower, 2))
    assert await is_leader(http, leader) and not await is_leader(http, follower)

    leader.kill()
    killed_at = time.monotonic()
    took = await wait_for(
        "takeover", LEASE_TTL + LEASE_TTL / 3 + 2, lambda: is_leader(http, follower)
    )
    print(f"takeover {took:.2f} s after kill -9 (lease_ttl {LEASE_TTL} s)")
    assert took <= LEASE_TTL + LEASE_TTL / 3 + 1.0

    # The new leader must not repeat rotation 1, and must run rotation 2 on time.
    await asyncio.sleep(2)
    assert await current_version(http, follower) == 2
    await wait_for("rotation 2", 90, lambda: _version_is(http, follower, 3))
    assert time.monotonic() - killed_at < 90

    status, body = await call(http, follower, "GET", "rotation/history/app/rotated")
    assert status == 200, body
    runs = body["runs"]
    assert [r["result"] for r in runs] == ["ok", "ok"], runs
    assert all(r["trigger"] == "schedule" for r in runs), runs
    assert len({r["run_id"] for r in runs}) == 2
    assert [r["version"] for r in runs] == [3, 2], runs  # newest first, no gap
    status, meta = await call(http, follower, "GET", "secrets/app/rotated:metadata")
    assert status == 200 and sorted(int(v) for v in meta["versions"]) == [1, 2, 3]
    await asyncio.sleep(1)
    assert await current_version(http, follower) == 3  # nothing ran twice afterwards


async def _one_leader(http: aiohttp.ClientSession, servers: list[VaultsideServer]) -> bool:
    return len(await leaders(http, servers)) == 1


async def _version_is(http: aiohttp.ClientSession, server: VaultsideServer, want: int) -> bool:
    return await current_version(http, server) >= want
