"""Scheduler leader election across servers: kill -9 the leader, another takes over.

Partition: the leader's database traffic is stalled by a proxy; the other server takes the
lease within ``lease_ttl`` plus one tick; once healed, the old leader fails to renew and
steps down, leaving exactly one leader.

Kill: two servers on one PostgreSQL, ``rotation.lease_ttl = 3``. A kv rotation policy runs every
60 s (the shortest schedule a policy allows). The leader rotates once, is SIGKILLed, the
other server holds the lease within ``lease_ttl`` plus one tick and runs the next rotation:
versions go 1 → 2 → 3, each run is journaled once, none is repeated or lost.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from pathlib import Path

import aiohttp
import pytest

from .services.postgres import PostgresCluster
from .services.tcp_proxy import TcpProxy
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


class PartitionProxy(TcpProxy):
    """A TCP proxy to PostgreSQL that can stall every byte (a partition) and let it flow again.

    While partitioned, nothing is forwarded in either direction and new connections wait:
    the client sees a silent network, not a refused or reset connection.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.open = threading.Event()
        self.open.set()
        super().__init__(upstream)

    def cut(self) -> None:
        self.open.clear()

    def heal(self) -> None:
        self.open.set()

    def admit(self, conn: socket.socket) -> bool:
        self.open.wait()
        return True

    def gate(self) -> None:
        self.open.wait()

    def close(self) -> None:
        self.open.set()
        super().close()


async def test_partitioned_leader_loses_the_role_and_steps_down_after_healing(
    replicas: Replicas, http: aiohttp.ClientSession, postgres: PostgresCluster, tmp_path: Path
) -> None:
    proxy = PartitionProxy((postgres.host, postgres.port))
    try:
        proxied = tmp_path / "proxied.dsn"
        proxied.write_text(replicas.dsn.replace(f":{postgres.port}/", f":{proxy.port}/"))
        proxied.chmod(0o600)
        (a,) = replicas.start(
            1,
            VAULTSIDE_ROTATION__LEASE_TTL=LEASE_TTL,
            VAULTSIDE_STORAGE__POSTGRES_DSN_FILE=str(proxied),
        )
        await wait_for("a leads", 2 * LEASE_TTL, lambda: is_leader(http, a))
        (b,) = replicas.start(1, VAULTSIDE_ROTATION__LEASE_TTL=LEASE_TTL)
        await asyncio.sleep(LEASE_TTL / 3 + 0.5)
        assert await leaders(http, [a, b]) == [0]

        proxy.cut()
        took = await wait_for("b takes over", LEASE_TTL * 3, lambda: is_leader(http, b))
        print(f"takeover {took:.2f} s after the leader was cut off (lease_ttl {LEASE_TTL} s)")
        assert took <= LEASE_TTL + LEASE_TTL / 3 + 1.0
        proxy.heal()
        # Its next tick fails to renew (b holds the lease): it steps down; b keeps leading.
        await wait_for("a steps down", 20, lambda: _not_leader(http, a))
        assert await leaders(http, [a, b]) == [1]
        assert (await call(http, a, "PUT", "secrets/after/heal", {"data": {"k": "v"}}))[0] == 200
    finally:
        proxy.close()


async def _not_leader(http: aiohttp.ClientSession, server: VaultsideServer) -> bool:
    return await is_leader(http, server) is False
