"""PostgresStorage against a real PostgreSQL: the shared conformance suite plus restarts."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import asyncpg
import pytest

from tests.storage_conformance import each_check
from vaultside.clock import FakeClock
from vaultside.errors import ConflictError, InvalidRequestError, UpstreamUnavailableError
from vaultside.storage.base import Put, StorageBackend
from vaultside.storage.conformance import Check, run_check
from vaultside.storage.postgres import PostgresStorage

from .services.postgres import PostgresCluster

# DSN of each backend handed out by the fixture, so ``reopen`` can build a twin.
_DSN_OF: dict[int, str] = {}


async def _admin(cluster: PostgresCluster, sql: str) -> None:
    conn = await asyncpg.connect(cluster.dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def database(postgres: PostgresCluster) -> Iterator[str]:
    """A fresh database on the session cluster; yields its superuser DSN."""
    name = f"vs_{secrets.token_hex(6)}"
    asyncio.run(_admin(postgres, f'CREATE DATABASE "{name}"'))
    yield postgres.dsn.rsplit("/", 1)[0] + f"/{name}"
    asyncio.run(_admin(postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _reopen(backend: StorageBackend) -> StorageBackend:
    assert isinstance(backend, PostgresStorage)
    await backend.close()
    again = PostgresStorage(_DSN_OF[id(backend)])
    await again.open()
    return again


@each_check
async def test_conformance(check: Check, database: str) -> None:
    async def make(clock: FakeClock) -> StorageBackend:
        storage = PostgresStorage(database, clock=clock, pool_max=10)
        await storage.open()
        _DSN_OF[id(storage)] = database
        return storage

    await run_check(check, make, _reopen)


async def test_survives_postgres_restart(postgres: PostgresCluster, database: str) -> None:
    storage = PostgresStorage(database, pool_min=2, pool_max=4, connect_timeout=3)
    await storage.open()
    try:
        rev = await storage.put("restart/k", b"before")
        postgres.stop()
        try:
            with pytest.raises(UpstreamUnavailableError):
                await storage.get("restart/k")
            with pytest.raises(UpstreamUnavailableError):
                await storage.put("restart/k", b"while-down")
        finally:
            postgres.start()
        rec = await storage.get("restart/k")
        assert rec is not None and (rec.value, rec.revision) == (b"before", rev)
        assert await storage.put("restart/k", b"after", expect_revision=rev) > rev
        results = await asyncio.gather(*(storage.get("restart/k") for _ in range(8)))
        assert all(r is not None and r.value == b"after" for r in results)
    finally:
        await storage.close()


async def test_replicas_share_revisions_and_leases(database: str) -> None:
    clock = FakeClock()
    a = PostgresStorage(database, clock=clock)
    b = PostgresStorage(database, clock=clock)
    await asyncio.gather(a.open(), b.open())  # concurrent migrations: one runs, one waits
    try:
        rev = await a.put("shared", b"1")
        with pytest.raises(ConflictError):
            await b.write_batch([Put("other", b"x"), Put("shared", b"2", expect_revision=rev + 7)])
        assert await a.get("other") is None
        assert await b.put("shared", b"2", expect_revision=rev) > rev
        assert await a.try_lock("leader", "replica-a", 15) is True
        assert await b.try_lock("leader", "replica-b", 15) is False
        await clock.advance(16)
        assert await b.try_lock("leader", "replica-b", 15) is True
    finally:
        await a.close()
        await b.close()


async def test_wrong_password_is_unavailable_and_secret_free(postgres: PostgresCluster) -> None:
    password = secrets.token_urlsafe(12)
    dsn = f"postgresql://{postgres.user}:{password}@{postgres.host}:{postgres.port}/postgres"
    storage = PostgresStorage(dsn)
    with pytest.raises(UpstreamUnavailableError) as info:
        await storage.open()
    assert password not in str(info.value)
    assert password not in repr(storage)
    assert f"{postgres.host}:{postgres.port}" in repr(storage)


async def test_nothing_listening_is_unavailable() -> None:
    storage = PostgresStorage("postgresql://u:p@127.0.0.1:1/db", connect_timeout=2)
    with pytest.raises(UpstreamUnavailableError):
        await storage.open()
    with pytest.raises(UpstreamUnavailableError):
        await storage.get("k")  # never opened


async def test_migrated_database_opens_with_dml_rights_only(
    postgres: PostgresCluster, database: str
) -> None:
    owner = PostgresStorage(database)
    await owner.open()  # the first open creates the schema (needs CREATE)
    await owner.close()
    role, password = f"vs_app_{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        await conn.execute(f"REVOKE CREATE ON SCHEMA public FROM {role}")
        await conn.execute(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON vaultside_kv, vaultside_leases,"
            f" vaultside_schema_version TO {role}"
        )
        await conn.execute(f"GRANT USAGE ON SEQUENCE vaultside_revision TO {role}")
    finally:
        await conn.close()
    app_dsn = database.replace(f"{postgres.user}:{postgres.password}@", f"{role}:{password}@")
    app = PostgresStorage(app_dsn)
    await app.open()
    try:
        rev = await app.put("least/privilege", b"ok", expect_revision=0)
        assert await app.try_lock("leader", "app", 10) is True
        rec = await app.get("least/privilege")
        assert rec is not None and rec.revision == rev
    finally:
        await app.close()
        await _admin(postgres, f"DROP OWNED BY {role} CASCADE")


async def test_key_postgres_cannot_store_is_invalid_request(database: str) -> None:
    storage = PostgresStorage(database)
    await storage.open()
    try:
        with pytest.raises(InvalidRequestError) as info:
            await storage.put("nul\x00key", b"v")
        assert "nul" not in str(info.value)
        assert await storage.list("nul") == []
    finally:
        await storage.close()
