"""Broker leases across two servers on one REAL PostgreSQL, with a REAL OpenBao database
engine: one server renews (the other serves the same credentials), unsubscribing on one server
does not revoke while the other still subscribes, the follower's subscriber gets the leader's
replacement, and when the leader loses its database the other server takes over renewal."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.stores import open_barrier
from vaultside.broker.leases import Lease
from vaultside.broker.source import Broker, BrokerRegistry
from vaultside.clock import SystemClock
from vaultside.config.settings import BrokerSettings
from vaultside.crypto.barrier import Barrier
from vaultside.refs import parse_ref
from vaultside.storage.postgres import PostgresStorage

from .services.openbao import OpenBaoServer
from .services.postgres import PostgresCluster
from .test_broker_database import can_connect, setup_database_engine
from .test_replicas_cluster import admin

pytestmark = [pytest.mark.openbao, pytest.mark.postgres, pytest.mark.timeout(120)]

LOCK_TTL = 3.0
REF = parse_ref("vault:corp/database/creds/app#password")


@pytest.fixture
async def database(postgres: PostgresCluster) -> AsyncIterator[str]:
    name = f"vs_lease_{secrets.token_hex(5)}"
    await admin(postgres.dsn, f'CREATE DATABASE "{name}"')
    try:
        yield postgres.dsn.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin(postgres.dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def open_server(dsn: str, key: Path, settings: BrokerSettings) -> tuple[Broker, Barrier]:
    """One 'server': its own connection pool and barrier on the shared database and key."""
    barrier = await open_barrier(PostgresStorage(dsn, pool_max=4), key)
    broker = Broker("corp", settings, barrier, SystemClock())
    await broker.start()
    return broker, barrier


def renewals(audit_log: Path, since: float) -> list[float]:
    """Times of lease renewal requests OpenBao answered since ``since`` (its audit log)."""
    times = []
    for line in audit_log.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("type") != "response" or entry["request"]["path"] != "sys/leases/renew":
            continue
        stamp = entry["time"].replace("Z", "+00:00")
        when = datetime.fromisoformat(stamp[:26] + stamp[-6:] if "." in stamp else stamp)
        if when.timestamp() >= since:
            times.append(when.timestamp())
    return sorted(times)


async def test_two_servers_share_one_renewed_lease(
    openbao: OpenBaoServer,
    postgres: PostgresCluster,
    database: str,
    tmp_path: Path,
    key_file: Path,
) -> None:
    setup_database_engine(openbao, postgres)  # TTL 4 s, max TTL 11 s
    (tmp_path / "token").write_text(openbao.root_token)
    settings = BrokerSettings(
        address=openbao.addr, token_file=tmp_path / "token", lease_lock_ttl=LOCK_TTL
    )
    a, barrier_a = await open_server(database, key_file, settings)
    b, barrier_b = await open_server(database, key_file, settings)
    try:
        assert [a.leases.leader, b.leases.leader] == [True, False]
        start = time.time()
        first = await a.read("database", "creds/app")
        assert (await b.read("database", "creds/app")).lease_id == first.lease_id
        assert await can_connect(postgres, first.data)

        got_b: list[Lease] = []
        watch_a = await BrokerRegistry({"corp": a}).watch(REF, _ignore)
        watch_b = await BrokerRegistry({"corp": b}).watch(REF, _append(got_b))
        await watch_a.close()  # a's consumer is gone, b's is not: no revocation
        assert await can_connect(postgres, first.data)

        await asyncio.sleep(5.5)  # past the 4 s TTL: renewed, by one server only
        assert await can_connect(postgres, first.data)
        times = renewals(openbao.audit_log, start)
        assert times, "no renewal reached OpenBao"
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        print(f"{len(times)} renewals, smallest gap {min(gaps, default=0):.2f} s")
        assert all(g > 0.5 for g in gaps), times  # two renewers would renew in pairs

        deadline = time.monotonic() + 15  # the 11 s max TTL forces a replacement
        while not got_b and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert got_b and got_b[0].lease_id != first.lease_id, "b's subscriber got nothing"
        assert await can_connect(postgres, got_b[0].data)
        assert (await b.read("database", "creds/app")).lease_id == got_b[0].lease_id

        # The leader (a) loses its database: b takes over renewing within the lock TTL.
        lost_at = time.monotonic()
        await barrier_a.close()
        while not b.leases.leader and time.monotonic() - lost_at < 3 * LOCK_TTL:
            await asyncio.sleep(0.1)
        took = time.monotonic() - lost_at
        assert b.leases.leader, "b never took over"
        print(f"lease-renewal leader taken over after {took:.1f} s")
        held = got_b[-1]
        await asyncio.sleep(5)  # past the TTL again: b renews (or replaces) it
        current = await b.read("database", "creds/app")
        assert await can_connect(postgres, current.data)
        assert current.lease_id in {lease.lease_id for lease in got_b} | {held.lease_id}

        await watch_b.close()  # the last subscriber anywhere: revoked
        assert not await can_connect(postgres, current.data)
    finally:
        await a.close()
        await b.close()
        await barrier_b.close()
        await barrier_a.close()


async def _ignore(_: Lease) -> None:
    return None


def _append(into: list[Lease]):  # type: ignore[no-untyped-def]
    async def on_new(lease: Lease) -> None:
        into.append(lease)

    return on_new
