"""PostgreSQL rotation end to end through a real ``vaultside serve`` and a real cluster.

Single role: the app logs in with the new password, the old one stops at once, and the
plaintext never reaches the server log (only a SCRAM verifier does). Alternating: the old
credentials keep working until the next flip, or until ``grace`` runs out. Crash: the server
is SIGKILLed while the ``test`` step is in flight (after ``set``); on restart the rotation is
rolled back and the store and the database agree.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from tests.integration.services.postgres import PostgresCluster
from tests.integration.services.tcp_proxy import TcpProxy
from tests.integration.services.vaultside_server import VaultsideServer, VaultsideServerFactory
from vaultside.client import VaultsideClient

pytestmark = pytest.mark.timeout(180)


async def can_login(pg: PostgresCluster, user: str, password: str) -> bool:
    try:
        conn = await asyncpg.connect(
            host=pg.host, port=pg.port, user=user, password=password, database="postgres"
        )
    except asyncpg.InvalidPasswordError:
        return False
    try:
        return bool(await conn.fetchval("SELECT 1") == 1)
    finally:
        await conn.close()


def admin_dsn(pg: PostgresCluster, user: str, password: str, port: int | None = None) -> str:
    return f"postgresql://{user}:{password}@{pg.host}:{port or pg.port}/postgres"


@pytest.fixture
async def roles(postgres: PostgresCluster) -> AsyncIterator[dict[str, str]]:
    """A non-superuser admin (CREATEROLE, statements logged) and three app roles it created."""
    tag = secrets.token_hex(4)
    names = {k: f"rot_{k}_{tag}" for k in ("admin", "app", "blue", "green")}
    passwords = {k: secrets.token_urlsafe(16) for k in names}
    su = await asyncpg.connect(postgres.dsn)
    try:
        await su.execute(
            f"CREATE ROLE {names['admin']} LOGIN CREATEROLE PASSWORD '{passwords['admin']}'"
        )
        await su.execute(f"ALTER ROLE {names['admin']} SET log_statement = 'all'")
    finally:
        await su.close()
    admin = await asyncpg.connect(admin_dsn(postgres, names["admin"], passwords["admin"]))
    try:
        for k in ("app", "blue", "green"):
            await admin.execute(f"CREATE ROLE {names[k]} LOGIN PASSWORD '{passwords[k]}'")
    finally:
        await admin.close()
    yield {**{f"{k}_name": v for k, v in names.items()}, **passwords}
    su = await asyncpg.connect(postgres.dsn)
    try:
        for k in ("app", "blue", "green", "admin"):
            await su.execute(f"DROP ROLE IF EXISTS {names[k]}")
    finally:
        await su.close()


async def setup(
    server: VaultsideServer, dsn: str, data: dict[str, str], target: dict[str, Any], **kw: Any
) -> VaultsideClient:
    client = VaultsideClient(server.addr, server.root_token)
    await client.write_secret("infra/pg-admin", {"dsn": dsn})
    await client.write_secret("app/db", data)
    policy = {
        "every": "1d",
        "generator": {"kind": "password", "length": 32, "classes": ["lower", "upper", "digit"]},
        "target": {"kind": "postgres", "admin_dsn_ref": "kv:infra/pg-admin#dsn", **target},
        **kw,
    }
    await client.request("PUT", "rotation/policies/app/db", body=policy)
    return client


async def rotate(client: VaultsideClient) -> dict[str, Any]:
    _, body, _ = await client.request("POST", "rotation/rotate/app/db")
    run: dict[str, Any] = body["run"]
    return run


async def current(client: VaultsideClient) -> dict[str, str]:
    secret = await client.read_secret("app/db")
    assert not isinstance(secret, tuple) and hasattr(secret, "data")
    return dict(secret.data)  # type: ignore[union-attr]


async def test_single_role_rotation(
    postgres: PostgresCluster,
    roles: dict[str, str],
    vaultside_server: VaultsideServerFactory,
) -> None:
    server = vaultside_server()
    user, old = roles["app_name"], roles["app"]
    dsn = admin_dsn(postgres, roles["admin_name"], roles["admin"])
    client = await setup(server, dsn, {"username": user, "password": old}, {"roles": [user]})
    try:
        run = await rotate(client)
        assert run["result"] == "ok", run
        new = await current(client)
        assert new["username"] == user and new["password"] != old
        assert await can_login(postgres, user, new["password"])
        assert not await can_login(postgres, user, old)  # single role: old stops at set
        # SECURITY: only a SCRAM verifier went over the wire; the log has no plaintext.
        log_text = postgres.log_path.read_text(errors="replace")
        assert "SCRAM-SHA-256$" in log_text and new["password"] not in log_text
        assert new["password"] not in server.output()
        # SECURITY: the journaled pending value and the new version are ciphertext on disk.
        for f in server.data_dir.rglob("*"):
            if f.is_file():
                raw = f.read_bytes()
                assert new["password"].encode() not in raw and old.encode() not in raw, f
        _, status, _ = await client.request("GET", "rotation/status/app/db")
        assert status["state"]["last_result"] == "ok" and status["state"]["version"] == 2
    finally:
        await client.close()


async def test_alternating_users(
    postgres: PostgresCluster,
    roles: dict[str, str],
    vaultside_server: VaultsideServerFactory,
) -> None:
    server = vaultside_server()
    blue, green = roles["blue_name"], roles["green_name"]
    dsn = admin_dsn(postgres, roles["admin_name"], roles["admin"])
    target = {"strategy": "alternating", "roles": [blue, green]}
    client = await setup(server, dsn, {"username": blue, "password": roles["blue"]}, target)
    try:
        assert (await rotate(client))["result"] == "ok"
        first = await current(client)
        assert first["username"] == green and await can_login(postgres, green, first["password"])
        # The previous credentials keep working until the next flip.
        assert await can_login(postgres, blue, roles["blue"])
        assert (await rotate(client))["result"] == "ok"
        second = await current(client)
        assert second["username"] == blue and await can_login(postgres, blue, second["password"])
        assert not await can_login(postgres, blue, roles["blue"])  # flipped away
        assert await can_login(postgres, green, first["password"])  # now the previous one
        # With a grace period the previous role also expires on its own.
        policy = (await client.request("GET", "rotation/policies/app/db"))[1]["policy"]
        policy["grace"] = 2
        await client.request("PUT", "rotation/policies/app/db", body=policy)
        assert (await rotate(client))["result"] == "ok"
        third = await current(client)
        assert third["username"] == green
        assert await can_login(postgres, blue, second["password"])  # inside the grace
        await asyncio.sleep(3)
        assert not await can_login(postgres, blue, second["password"])  # grace over
        assert await can_login(postgres, green, third["password"])
    finally:
        await client.close()


class HoldingProxy(TcpProxy):
    """A TCP proxy to PostgreSQL that stalls connection number ``hold_at`` (1-based)."""

    def __init__(self, upstream: tuple[str, int], hold_at: int) -> None:
        self.hold_at = hold_at
        self.count = 0
        self.held = threading.Event()
        super().__init__(upstream)

    def admit(self, conn: socket.socket) -> bool:
        self.count += 1
        if self.count == self.hold_at:
            self.held.set()
            return False  # never forwarded: the client waits until it times out or dies
        return True


@pytest.fixture
def proxy(postgres: PostgresCluster) -> Iterator[HoldingProxy]:
    # Connections: 1 create_pending (read verifier), 2 set, 3 test → hold the test's login.
    p = HoldingProxy((postgres.host, postgres.port), hold_at=3)
    yield p
    p.close()


async def test_kill_between_set_and_finish_rolls_back(
    postgres: PostgresCluster,
    roles: dict[str, str],
    proxy: HoldingProxy,
    vaultside_server: VaultsideServerFactory,
) -> None:
    server = vaultside_server(VAULTSIDE_ROTATION__LEASE_TTL="2")
    user, old = roles["app_name"], roles["app"]
    # Superuser admin through the proxy, so create_pending reads the stored verifier.
    su_dsn = postgres.dsn.replace(f":{postgres.port}/", f":{proxy.port}/")
    target = {"roles": [user], "connect_timeout": 60}
    client = await setup(server, su_dsn, {"username": user, "password": old}, target)
    try:
        rotation = asyncio.create_task(rotate(client))
        deadline = time.monotonic() + 90
        while not proxy.held.is_set():
            assert time.monotonic() < deadline, "the rotation never reached its test step"
            await asyncio.sleep(0.05)
        # set has run: the database now has the pending password, the store the old one.
        assert not await can_login(postgres, user, old)
        server.kill()
        with pytest.raises(Exception):  # noqa: B017 - the server died mid-request
            await rotation
    finally:
        await client.close()
    await asyncio.to_thread(server.start)  # recovery runs when the scheduler takes the lease
    client = VaultsideClient(server.addr, server.root_token)
    try:
        deadline = time.monotonic() + 90
        while True:
            _, status, _ = await client.request("GET", "rotation/status/app/db")
            if status["in_flight"] is None and status["state"]["last_result"] is not None:
                break
            assert time.monotonic() < deadline, status
            await asyncio.sleep(0.2)
        assert status["state"]["last_result"] == "failed"
        assert "rolled back" in (status["state"]["last_error"] or "")
        data = await current(client)
        assert data["password"] == old
        assert await can_login(postgres, user, data["password"])  # store and target agree
        _, hist, _ = await client.request("GET", "rotation/history/app/db")
        assert hist["runs"][0]["extra"] == {"recovered": "rolled back"}
    finally:
        await client.close()
