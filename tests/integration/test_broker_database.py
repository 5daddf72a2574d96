"""Dynamic database credentials through a REAL OpenBao database engine and REAL PostgreSQL:
the credentials connect, get renewed, survive a vaultside restart (persisted encrypted),
are replaced before their max TTL with subscribers told, and stop working once revoked."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path

import aiohttp
import asyncpg
import hvac
import pytest

from tests.stores import BARRIER_DB
from vaultside.broker.leases import Lease
from vaultside.broker.source import Broker, BrokerRegistry
from vaultside.clock import SystemClock
from vaultside.config.settings import BrokerSettings
from vaultside.crypto.barrier import Barrier
from vaultside.refs import parse_ref

from .services.openbao import OpenBaoServer
from .services.postgres import PostgresCluster
from .stack import broker_server

pytestmark = [pytest.mark.openbao, pytest.mark.postgres]


def setup_database_engine(openbao: OpenBaoServer, pg: PostgresCluster) -> None:
    client = hvac.Client(url=openbao.addr, token=openbao.root_token)
    if "database/" not in client.sys.list_mounted_secrets_engines()["data"]:
        client.sys.enable_secrets_engine("database")
    client.secrets.database.configure(
        name="pg",
        plugin_name="postgresql-database-plugin",
        connection_url=f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{pg.port}/postgres?sslmode=disable",
        username=pg.user,
        password=pg.password,
        allowed_roles=["app", "short"],
    )
    # TTL 6 s renewed every 4 s: the renewal at 12 s is the first one the 16 s max TTL caps.
    client.secrets.database.create_role(
        name="short",
        db_name="pg",
        creation_statements=[
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
            "VALID UNTIL '{{expiration}}';"
        ],
        default_ttl="6s",
        max_ttl="16s",
    )
    client.secrets.database.create_role(
        name="app",
        db_name="pg",
        creation_statements=[
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
            "VALID UNTIL '{{expiration}}';"
        ],
        default_ttl="4s",
        max_ttl="11s",
    )


async def can_connect(pg: PostgresCluster, creds: dict[str, str]) -> bool:
    try:
        conn = await asyncpg.connect(
            host="127.0.0.1", port=pg.port, user=creds["username"],
            password=creds["password"], database="postgres", timeout=5,
        )  # fmt: skip
    except (asyncpg.PostgresError, OSError):
        return False
    try:
        return await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


async def test_database_credentials_lifecycle(
    openbao: OpenBaoServer, postgres: PostgresCluster, barrier: Barrier, tmp_path: Path
) -> None:
    setup_database_engine(openbao, postgres)
    (tmp_path / "token").write_text(openbao.root_token)
    settings = BrokerSettings(address=openbao.addr, token_file=tmp_path / "token")

    broker = Broker("corp", settings, barrier, SystemClock())
    await broker.start()
    issued_at = time.time()
    first = await broker.read("database", "creds/app")
    assert first.kind == "dynamic" and first.lease_id and first.lease_duration == 4
    assert await can_connect(postgres, first.data)
    again = await broker.read("database", "creds/app")
    assert again.lease_id == first.lease_id  # one shared lease, not one per read

    await asyncio.sleep(5.5)  # past the 4 s TTL: only renewal (VALID UNTIL pushed) lets it in
    assert await can_connect(postgres, first.data)
    await broker.close()

    # The lease is persisted through the barrier: encrypted at rest, picked up by a new broker.
    db_bytes = b"".join(p.read_bytes() for p in tmp_path.glob(f"{BARRIER_DB}*"))
    assert db_bytes
    assert first.data["password"].encode() not in db_bytes
    broker = Broker("corp", BrokerSettings(address=openbao.addr, token_file=tmp_path / "token"),
                    barrier, SystemClock())  # fmt: skip
    await broker.start()
    try:
        resumed = await broker.read("database", "creds/app")
        assert resumed.lease_id == first.lease_id and resumed.data == first.data

        delivered: list[Lease] = []
        got_new = asyncio.Event()

        async def on_new(lease: Lease) -> None:
            delivered.append(lease)
            got_new.set()

        ref = parse_ref("vault:corp/database/creds/app#password")
        watch = await BrokerRegistry({"corp": broker}).watch(ref, on_new)
        assert watch.lease.lease_id == first.lease_id
        await asyncio.wait_for(got_new.wait(), timeout=15)  # before the 11 s max TTL runs out
        new = delivered[0]
        assert new.lease_id != first.lease_id and new.data["username"] != first.data["username"]
        assert await can_connect(postgres, new.data)

        await watch.close()  # the last consumer is gone: revoke
        assert not await can_connect(postgres, new.data)
        await asyncio.sleep(max(0.0, issued_at + 12 - time.time()))  # past the old max TTL
    finally:
        await broker.close()
    assert not await can_connect(postgres, first.data)  # expired at its max TTL upstream


async def test_database_credentials_through_the_api(
    openbao: OpenBaoServer,
    postgres: PostgresCluster,
    vaultside_server,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    setup_database_engine(openbao, postgres)
    server = broker_server(vaultside_server, openbao.addr, openbao.root_token, tmp_path / "token")
    headers = {"Authorization": f"Bearer {server.root_token}"}
    url = f"{server.addr}/v1/broker/corp/database/creds/app"
    async with aiohttp.ClientSession() as s:
        async with s.get(url, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            first = await resp.json()
        async with s.get(url, headers=headers) as resp:
            second = await resp.json()
        async with s.get(f"{url}?version=2", headers=headers) as resp:
            assert resp.status == 400  # versions are for KV only
    lease = first["lease"]
    assert first["metadata"]["kind"] == "dynamic" and lease["lease_duration"] == 4
    assert lease["lease_id"].startswith("database/creds/app/") and lease["expires_time"]
    assert second["lease"]["lease_id"] == lease["lease_id"]
    assert await can_connect(postgres, first["data"])
    # Persisted through the barrier: the password is nowhere in the data dir in plaintext.
    password = first["data"]["password"].encode()
    for path in server.data_dir.rglob("*"):
        if path.is_file():
            assert password not in path.read_bytes(), path


MIN_REMAINING = 3.0
SHORT_MAX_TTL = 16.0


def _upstream_end(client: hvac.Client, lease_id: str) -> float:
    """When OpenBao's max TTL ends the lease: its issue time plus the role's max TTL."""
    issued = client.sys.read_lease(lease_id=lease_id)["data"]["issue_time"]
    return datetime.fromisoformat(issued.replace("Z", "+00:00")).timestamp() + SHORT_MAX_TTL


async def test_plain_api_reader_never_gets_credentials_about_to_die(
    openbao: OpenBaoServer,
    postgres: PostgresCluster,
    vaultside_server,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """Issue 16: a reader polling the API across three leases always gets at least
    ``min_remaining`` seconds of real life (measured against OpenBao's own issue time), the
    remaining life in a field and a header (never overstated), and working credentials."""
    setup_database_engine(openbao, postgres)
    root = hvac.Client(url=openbao.addr, token=openbao.root_token)
    server = broker_server(
        vaultside_server, openbao.addr, openbao.root_token, tmp_path / "token",
        VAULTSIDE_BROKERS__corp__MIN_REMAINING=MIN_REMAINING,
    )  # fmt: skip
    headers = {"Authorization": f"Bearer {server.root_token}"}
    url = f"{server.addr}/v1/broker/corp/database/creds/short"
    ends: dict[str, float] = {}
    worst: dict[str, float] = {}
    last: dict[str, dict[str, str]] = {}
    reported: list[tuple[str | None, int | None, float]] = []
    late_checked: set[str] = set()
    started = time.time()
    async with aiohttp.ClientSession() as s:
        while time.time() - started < 2.4 * SHORT_MAX_TTL:
            async with s.get(url, headers=headers) as resp:
                assert resp.status == 200, await resp.text()
                body = await resp.json()
                header = resp.headers.get("X-Vaultside-Lease-Remaining")
            now = time.time()
            lease = body["lease"]
            lease_id = lease["lease_id"]
            if lease_id not in ends:
                ends[lease_id] = _upstream_end(root, lease_id)
                assert await can_connect(postgres, body["data"])
            real = ends[lease_id] - now
            worst[lease_id] = min(worst.get(lease_id, real), real)
            last[lease_id] = body["data"]
            reported.append((header, lease.get("remaining_life"), real))
            # Credentials handed out still work just before their end, replaced or not.
            for seen, end in ends.items():
                if seen not in late_checked and end - 1.5 <= time.time() < end - 0.5:
                    late_checked.add(seen)
                    assert await can_connect(postgres, last[seen]), (seen, end - time.time())
            await asyncio.sleep(0.2)
    print({k.rsplit("/", 1)[-1]: round(v, 2) for k, v in worst.items()})
    assert len(ends) >= 3, ends  # replaced at least twice while polled
    assert len(late_checked) >= 2, late_checked
    for lease_id, left in worst.items():
        assert left >= MIN_REMAINING - 0.3, (lease_id, left)
    for header, field, real in reported:
        assert header is not None and field is not None and int(header) == field
        assert field <= real + 1.0, (field, real)  # never overstated
    newest = max(ends, key=lambda k: ends[k])
    assert await can_connect(postgres, last[newest])


async def test_upstream_revoke_then_the_next_read_gets_working_credentials(
    openbao: OpenBaoServer,
    postgres: PostgresCluster,
    vaultside_server,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """Issue 16: after ``bao lease revoke`` the held lease is dropped and the next read (after
    the documented look-up interval, 1 s) gets new credentials that connect."""
    setup_database_engine(openbao, postgres)
    root = hvac.Client(url=openbao.addr, token=openbao.root_token)
    server = broker_server(vaultside_server, openbao.addr, openbao.root_token, tmp_path / "token")
    headers = {"Authorization": f"Bearer {server.root_token}"}
    url = f"{server.addr}/v1/broker/corp/database/creds/short"
    async with aiohttp.ClientSession() as s:
        async with s.get(url, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            first = await resp.json()
        assert await can_connect(postgres, first["data"])
        root.sys.revoke_lease(lease_id=first["lease"]["lease_id"])
        assert not await can_connect(postgres, first["data"])  # the revoke dropped the role
        await asyncio.sleep(1.2)  # the look-up interval; the next renewal is only due at 4 s
        async with s.get(url, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            second = await resp.json()
    assert second["lease"]["lease_id"] != first["lease"]["lease_id"]
    assert await can_connect(postgres, second["data"])
