"""``vaultside serve`` with ``storage.kind = "postgres"``: real server, real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from .services.postgres import PostgresCluster
from .services.process import spawn, terminate, wait_until
from .services.vaultside_server import VaultsideServer, VaultsideServerFactory
from .services.wire import request


def call(
    server: VaultsideServer, method: str, path: str, body: object | None = None
) -> tuple[int, dict[str, object]]:
    """One JSON request with the root token; returns (status, decoded body or {})."""
    reply = request(
        server.addr, method, path, token=server.root_token, body=body,
        headers={"Content-Type": "application/json"}, timeout=30,
    )  # fmt: skip
    return reply.status, reply.json_or({})


async def _fetch_values(dsn: str) -> list[bytes]:
    conn = await asyncpg.connect(dsn)
    try:
        return [bytes(r["value"]) for r in await conn.fetch("SELECT value FROM vaultside_kv")]
    finally:
        await conn.close()


async def _admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def pg_server(
    postgres: PostgresCluster, vaultside_server: VaultsideServerFactory, tmp_path: Path
) -> Iterator[tuple[VaultsideServer, str]]:
    """A vaultside server on its own fresh PostgreSQL database; yields (server, dsn)."""
    name = f"vs_srv_{secrets.token_hex(5)}"
    asyncio.run(_admin(postgres.dsn, f'CREATE DATABASE "{name}"'))
    dsn = postgres.dsn.rsplit("/", 1)[0] + f"/{name}"
    dsn_file = tmp_path / "postgres.dsn"
    dsn_file.write_text(dsn)
    dsn_file.chmod(0o600)
    server = vaultside_server(
        VAULTSIDE_STORAGE__KIND="postgres", VAULTSIDE_STORAGE__POSTGRES_DSN_FILE=str(dsn_file)
    )
    yield server, dsn
    server.stop()
    asyncio.run(_admin(postgres.dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_secrets_live_encrypted_in_postgres(pg_server: tuple[VaultsideServer, str]) -> None:
    server, dsn = pg_server
    value = secrets.token_urlsafe(24)
    status, _ = call(server, "PUT", "/v1/secrets/app/db", {"data": {"password": value}})
    assert status == 200
    status, body = call(server, "GET", "/v1/secrets/app/db")
    assert status == 200 and body["data"] == {"password": value}
    stored = asyncio.run(_fetch_values(dsn))
    assert stored, "nothing was written to PostgreSQL"
    # SECURITY: only ciphertext reaches the database.
    assert not any(value.encode() in v for v in stored)
    assert not any(b"password" in v for v in stored)
    assert not list(server.data_dir.glob("*.db")), "sqlite file created despite kind=postgres"


def test_postgres_restart_gives_503_then_recovers(
    pg_server: tuple[VaultsideServer, str], postgres: PostgresCluster
) -> None:
    server, _dsn = pg_server
    value = secrets.token_urlsafe(24)
    assert call(server, "PUT", "/v1/secrets/app/x", {"data": {"k": value}})[0] == 200
    postgres.stop()
    try:
        status, body = call(server, "GET", "/v1/secrets/app/x")
        assert status == 503, body
        assert value not in json.dumps(body)
    finally:
        postgres.start()
    status, body = call(server, "GET", "/v1/secrets/app/x")
    assert status == 200 and body["data"] == {"k": value}
    assert server.proc is not None and server.proc.poll() is None


def test_restart_keeps_secrets_in_postgres(pg_server: tuple[VaultsideServer, str]) -> None:
    server, _dsn = pg_server
    value = secrets.token_urlsafe(24)
    assert call(server, "PUT", "/v1/secrets/keep/me", {"data": {"k": value}})[0] == 200
    server.restart()
    status, body = call(server, "GET", "/v1/secrets/keep/me")
    assert status == 200 and body["data"] == {"k": value}


def test_serve_started_while_postgres_is_down_waits_for_it(
    pg_server: tuple[VaultsideServer, str], postgres: PostgresCluster
) -> None:
    server, _dsn = pg_server
    value = secrets.token_urlsafe(24)
    assert call(server, "PUT", "/v1/secrets/app/early", {"data": {"k": value}})[0] == 200
    server.stop()
    postgres.stop()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VAULTSIDE_")},
        "VAULTSIDE_DATA_DIR": str(server.data_dir),
        "PYTHONUNBUFFERED": "1",
        **server.env,
    }
    argv = [sys.executable, "-m", "vaultside", "serve", "--listen", f"127.0.0.1:{server.port}"]
    log = server.data_dir.parent / "early.log"
    proc = spawn(argv, log, env=env, cwd=server.data_dir.parent)
    try:
        # Not ready while its database is down: health 503 and the reason, and it keeps trying
        # (the server used to exit here).
        wait_until(
            lambda: _health(server) == 503, timeout=60, what="sealed server", proc=proc,
            log_path=log,
        )  # fmt: skip
        status, body = call(server, "GET", "/v1/sys/seal-status")
        assert status == 200 and body["sealed"] is True
        assert str(body["reason"]).startswith("storage unavailable"), body
        time.sleep(2)
        assert proc.poll() is None and _health(server) == 503, log.read_text()
        postgres.start()
        wait_until(
            lambda: _health(server) == 200, timeout=30, what="ready once PostgreSQL is up",
            proc=proc, log_path=log,
        )  # fmt: skip
        status, body = call(server, "GET", "/v1/secrets/app/early")
        assert status == 200 and body["data"] == {"k": value}
    finally:
        terminate(proc, grace=15)
        postgres.start()  # a no-op unless an assertion above left it stopped
    assert value not in log.read_text()


def _health(server: VaultsideServer) -> int:
    return call(server, "GET", "/v1/sys/health")[0]
