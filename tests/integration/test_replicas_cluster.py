"""Several ``vaultside serve`` processes on one PostgreSQL database (issue 7).

Each server is its own process with its own data dir (audit log, HMAC key) but the same
root key file and the same database. Checked: a write on one is read on the others; a token
revoked or a policy narrowed on one is enforced on the others within the documented bound
(1 s), and typically within milliseconds through the change feed; concurrent check-and-set
from different servers has exactly one winner per version; a PostgreSQL restart under
traffic gives 503s, never wrong answers, and the servers recover without a restart.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from .services.postgres import PostgresCluster
from .services.vaultside_server import VaultsideServer, VaultsideServerFactory

pytestmark = pytest.mark.timeout(240)

# The documented cross-server staleness bound (docs/replicas.md) and the slack allowed for
# one HTTP round trip and the polling interval on a loaded 2-core machine.
BOUND = 1.0
SLACK = 0.3
# What the change feed typically achieves (notification + one poll interval), far under BOUND.
FEED_TYPICAL = 0.25


async def admin(dsn: str, sql: str) -> None:
    """Run one statement as the superuser."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@dataclass
class Replicas:
    """Servers sharing one fresh database and one root key file."""

    factory: VaultsideServerFactory
    dsn: str
    dsn_file: Path
    key_file: Path
    servers: list[VaultsideServer] = field(default_factory=list)

    def env(self, **extra: object) -> dict[str, object]:
        """The settings every replica needs, plus ``extra``."""
        return {
            "VAULTSIDE_STORAGE__KIND": "postgres",
            "VAULTSIDE_STORAGE__POSTGRES_DSN_FILE": str(self.dsn_file),
            "VAULTSIDE_SEAL__KEY_FILE": str(self.key_file),
            **extra,
        }

    def start(self, n: int = 1, **extra: object) -> list[VaultsideServer]:
        """Start ``n`` more servers one after the other (the first creates the keyring)."""
        started = [self.factory(**self.env(**extra)) for _ in range(n)]
        self.servers.extend(started)
        return started


@pytest.fixture
def replicas(
    postgres: PostgresCluster, vaultside_server: VaultsideServerFactory, tmp_path: Path
) -> Iterator[Replicas]:
    """A fresh database and a shared key path; servers are started by the test."""
    name = f"vs_rep_{secrets.token_hex(5)}"
    asyncio.run(admin(postgres.dsn, f'CREATE DATABASE "{name}"'))
    dsn = postgres.dsn.rsplit("/", 1)[0] + f"/{name}"
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o700)
    dsn_file = shared / "postgres.dsn"
    dsn_file.write_text(dsn)
    dsn_file.chmod(0o600)
    group = Replicas(vaultside_server, dsn, dsn_file, shared / "root.key")
    yield group
    for server in group.servers:
        server.stop()
    postgres.start()  # in case a test failed while it was stopped
    asyncio.run(admin(postgres.dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """One client session; no connection reuse surprises across servers."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    server: VaultsideServer,
    method: str,
    path: str,
    body: object | None = None,
    token: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """One JSON request; returns (status, body or {}); connection errors are status 0."""
    headers = {"Authorization": f"Bearer {token or server.root_token}"}
    try:
        async with http.request(
            method, f"{server.addr}/v1/{path}", json=body, headers=headers
        ) as resp:
            data = await resp.json() if resp.content_type == "application/json" else {}
            return resp.status, data
    except (aiohttp.ClientError, OSError, TimeoutError):
        return 0, {}


async def wait_denied(
    http: aiohttp.ClientSession, server: VaultsideServer, path: str, token: str, start: float
) -> float:
    """Poll a read with ``token`` until 403; seconds from ``start`` to the first 403."""
    while time.monotonic() - start < 10:
        status, _ = await call(http, server, "GET", path, token=token)
        if status == 403:
            return time.monotonic() - start
        assert status == 200, status
        await asyncio.sleep(0.02)
    raise AssertionError(f"{server.addr} still accepted the token after 10 s")


async def test_write_on_one_is_read_on_the_others(
    replicas: Replicas, http: aiohttp.ClientSession
) -> None:
    a, b, c = replicas.start(3)
    values = [secrets.token_urlsafe(16) for _ in range(3)]
    for i, value in enumerate(values):
        writer = (a, b, c)[i]
        status, _ = await call(http, writer, "PUT", "secrets/app/db", {"data": {"pw": value}})
        assert status == 200
        for reader in (a, b, c):
            status, body = await call(http, reader, "GET", "secrets/app/db")
            assert status == 200 and body["data"] == {"pw": value}
            assert body["metadata"]["version"] == i + 1
    # Every version written anywhere is readable everywhere, and metadata agrees.
    for reader in (a, b, c):
        status, meta = await call(http, reader, "GET", "secrets/app/db:metadata")
        assert status == 200 and meta["current_version"] == 3
        for version, value in enumerate(values, start=1):
            status, body = await call(http, reader, "GET", f"secrets/app/db?version={version}")
            assert status == 200 and body["data"] == {"pw": value}
    # A root token minted by one dev server is valid on the others: tokens live in storage.
    status, _ = await call(http, b, "GET", "secrets/app/db", token=a.root_token)
    assert status == 200


async def test_revoked_token_and_narrowed_policy_enforced_everywhere_within_bound(
    replicas: Replicas, http: aiohttp.ClientSession
) -> None:
    a, b, c = replicas.start(3)
    assert (await call(http, a, "PUT", "secrets/team/x", {"data": {"k": "v"}}))[0] == 200
    rules = [{"path": "secrets/team/*", "capabilities": ["read"]}]
    assert (await call(http, a, "PUT", "sys/policies/team-read", {"rules": rules}))[0] in (
        200,
        204,
    )
    revoke_times: list[float] = []
    policy_times: list[float] = []
    for _round in range(3):
        status, body = await call(
            http, a, "POST", "auth/token/create", {"policies": ["team-read"], "ttl": "1h"}
        )
        assert status == 200, body
        token = body["auth"]["token"]
        # Warm every server's cache with the token (each now holds it as valid).
        for server in (a, b, c):
            assert (await call(http, server, "GET", "secrets/team/x", token=token))[0] == 200
        start = time.monotonic()
        status, _ = await call(http, a, "POST", "auth/token/revoke", {"token": token})
        assert status == 204
        revoke_times += await asyncio.gather(
            *(wait_denied(http, s, "secrets/team/x", token, start) for s in (b, c))
        )
        assert (await call(http, a, "GET", "secrets/team/x", token=token))[0] == 403

    # Narrowing a policy on one server: the others stop granting within the bound.
    status, body = await call(
        http, b, "POST", "auth/token/create", {"policies": ["team-read"], "ttl": "1h"}
    )
    token = body["auth"]["token"]
    for server in (a, b, c):
        assert (await call(http, server, "GET", "secrets/team/x", token=token))[0] == 200
    narrowed = [{"path": "secrets/other/*", "capabilities": ["read"]}]
    start = time.monotonic()
    assert (await call(http, b, "PUT", "sys/policies/team-read", {"rules": narrowed}))[0] in (
        200,
        204,
    )
    policy_times += await asyncio.gather(
        *(wait_denied(http, s, "secrets/team/x", token, start) for s in (a, c))
    )
    print(f"revoke seen after {[round(t, 3) for t in revoke_times]} s;"
          f" policy change after {[round(t, 3) for t in policy_times]} s")  # fmt: skip
    assert max(revoke_times + policy_times) <= BOUND + SLACK
    # With the change feed (LISTEN/NOTIFY) most changes are seen long before the bound.
    assert statistics.median(revoke_times + policy_times) < FEED_TYPICAL


async def test_concurrent_check_and_set_from_two_servers_has_one_winner(
    replicas: Replicas, http: aiohttp.ClientSession
) -> None:
    a, b = replicas.start(2)
    assert (await call(http, a, "PUT", "secrets/cas/x", {"data": {"v": "0"}}))[0] == 200
    rounds, writers = 15, 6
    for version in range(1, rounds + 1):
        # Writers alternate between the servers and all expect the same current version.
        results = await asyncio.gather(
            *(
                call(
                    http,
                    (a, b)[i % 2],
                    "PUT",
                    "secrets/cas/x",
                    {"data": {"v": f"{version}-{i}"}, "cas": version},
                )
                for i in range(writers)
            )
        )
        statuses = sorted(s for s, _ in results)
        assert statuses.count(200) == 1, statuses
        assert set(statuses) <= {200, 400, 409}, statuses
        assert all(s != 200 or body["metadata"]["version"] == version + 1 for s, body in results)
    status, meta = await call(http, b, "GET", "secrets/cas/x:metadata")
    assert status == 200 and meta["current_version"] == rounds + 1
    # No gaps, no duplicates: versions are exactly 1..rounds+1.
    versions = sorted(int(v) for v in meta["versions"])
    assert versions[-1] == rounds + 1
    assert versions == list(range(versions[0], rounds + 2))


async def test_postgres_restart_mid_traffic_503_then_recovers(
    replicas: Replicas, http: aiohttp.ClientSession, postgres: PostgresCluster
) -> None:
    a, b = replicas.start(2)
    assert (await call(http, a, "PUT", "secrets/live/x", {"data": {"v": "0"}}))[0] == 200
    seen: list[tuple[float, int, str]] = []
    stop = asyncio.Event()

    async def traffic(server: VaultsideServer, tag: str) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            if n % 3 == 0:
                status, _ = await call(
                    http, server, "PUT", "secrets/live/x", {"data": {"v": f"{tag}{n}"}}
                )
            else:
                status, body = await call(http, server, "GET", "secrets/live/x")
                if status == 200:
                    assert set(body["data"]) == {"v"}
            seen.append((time.monotonic(), status, tag))
            await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(traffic(s, t)) for s, t in ((a, "a"), (b, "b"))]
    await asyncio.sleep(1.0)
    down_at = time.monotonic()
    await asyncio.to_thread(postgres.stop)
    await asyncio.sleep(2.0)
    up_at = time.monotonic()
    restarted = threading.Event()
    await asyncio.to_thread(lambda: (postgres.start(), restarted.set()))
    await asyncio.sleep(3.0)
    stop.set()
    await asyncio.gather(*tasks)

    statuses = {s for _, s, _ in seen}
    assert statuses <= {200, 503}, statuses  # never a 500 or a dropped connection
    during = [s for t, s, _ in seen if down_at + 0.5 < t < up_at]
    assert during and set(during) == {503}
    # After the restart every server answers again without being restarted.
    for server in (a, b):
        assert server.proc is not None and server.proc.poll() is None
        status, body = await call(http, server, "GET", "secrets/live/x")
        assert status == 200
    last_bad = max((t for t, s, _ in seen if s != 200), default=up_at)
    print(f"503s while down: {len(during)}; recovered {last_bad - up_at:.2f} s after start")
    status, _ = await call(http, a, "PUT", "secrets/live/x", {"data": {"v": "after"}})
    assert status == 200
    status, body = await call(http, b, "GET", "secrets/live/x")
    assert status == 200 and body["data"] == {"v": "after"}
