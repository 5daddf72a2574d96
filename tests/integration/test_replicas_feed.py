"""PostgresChangeFeed on a real PostgreSQL: which changes are announced, and reconnection."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from vaultside.errors import ConflictError
from vaultside.storage.base import Put
from vaultside.storage.notify import CHANNEL, PostgresChangeFeed
from vaultside.storage.postgres import PostgresStorage

from .services.postgres import PostgresCluster

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def dsn(postgres: PostgresCluster) -> AsyncIterator[str]:
    name = f"vs_feed_{secrets.token_hex(5)}"
    admin = await asyncpg.connect(postgres.dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield postgres.dsn.rsplit("/", 1)[0] + f"/{name}"
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def until(predicate: object, timeout: float = 5.0) -> float:
    start = time.monotonic()
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() - start < timeout, "timed out"
        await asyncio.sleep(0.005)
    return time.monotonic() - start


async def test_announces_auth_and_keyring_changes_after_commit_only(dsn: str) -> None:
    storage = PostgresStorage(dsn)
    await storage.open()
    feed = PostgresChangeFeed(dsn, probe_interval=0.5)
    got: list[str | None] = []
    feed.subscribe(got.append)
    await feed.start()
    try:
        assert await feed.wait_listening(5)
        await until(lambda: got == [None])  # connected: "anything may have changed"
        got.clear()
        await storage.put("logical/kv/data/app/1", b"x")  # not a cached record: silent
        await storage.put("logical/auth/token/abc", b"t")
        await storage.put("core/keyring", b"k")
        await storage.delete("logical/auth/policy/team")  # absent: nothing deleted
        await storage.put("logical/auth/policy/team", b"p")
        await storage.delete("logical/auth/policy/team")
        with pytest.raises(ConflictError):  # a rolled-back batch announces nothing
            await storage.write_batch(
                [
                    Put("logical/auth/token/rolled", b"r"),
                    Put("core/keyring", b"z", expect_revision=1),
                ]
            )
        await until(lambda: len(got) >= 4)
        await asyncio.sleep(0.3)
        assert got == [
            "logical/auth/token/abc",
            "core/keyring",
            "logical/auth/policy/team",
            "logical/auth/policy/team",
        ]
        assert "logical/auth/token/rolled" not in got
    finally:
        await feed.close()
        await storage.close()


async def test_reconnects_after_its_connection_is_killed(dsn: str) -> None:
    storage = PostgresStorage(dsn)
    await storage.open()
    feed = PostgresChangeFeed(dsn, retry_delay=0.2, probe_interval=0.5)
    got: list[str | None] = []
    feed.subscribe(got.append)
    await feed.start()
    try:
        assert await feed.wait_listening(5)
        admin = await asyncpg.connect(dsn)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query = $1",
                f'LISTEN "{CHANNEL}"',
            )
        finally:
            await admin.close()
        assert killed == 1
        # Lost: subscribers are told to drop everything; then it listens again.
        await until(lambda: got.count(None) >= 3)  # connect, lost, reconnect
        assert feed.connected
        got.clear()
        await storage.put("logical/auth/token/after", b"t")
        await until(lambda: "logical/auth/token/after" in got)
    finally:
        await feed.close()
        await storage.close()
