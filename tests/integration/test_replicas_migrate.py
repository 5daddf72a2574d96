"""``vaultside operator migrate-storage``: SQLite → PostgreSQL → SQLite with real servers.

Every version, soft-deleted version, metadata field, policy and token survives both moves,
across two keyring terms; the copy is ciphertext only; a non-empty destination is refused
unless ``--force``; ``--verify-only`` compares the two sides.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from .services.postgres import PostgresCluster
from .services.vaultside_server import VaultsideServer, VaultsideServerFactory
from .test_replicas_cluster import call, http

__all__ = ["http"]

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
async def pg_dsn_file(postgres: PostgresCluster, tmp_path: Path) -> AsyncIterator[Path]:
    name = f"vs_mig_{secrets.token_hex(5)}"
    admin = await asyncpg.connect(postgres.dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        path = tmp_path / "pg.dsn"
        path.write_text(postgres.dsn.rsplit("/", 1)[0] + f"/{name}")
        path.chmod(0o600)
        yield path
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def migrate_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``vaultside operator migrate-storage`` like an operator would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTSIDE_")}
    env["VAULTSIDE_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "vaultside", "operator", "migrate-storage", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def snapshot(http: aiohttp.ClientSession, server: VaultsideServer) -> dict[str, Any]:
    """Everything observable about the test data through the API."""
    out: dict[str, Any] = {}
    for path in ("app/db", "app/api", "team/cfg"):
        status, meta = await call(http, server, "GET", f"secrets/{path}:metadata")
        assert status == 200, meta
        out[path] = {"meta": meta, "versions": {}}
        for number, info in meta["versions"].items():
            status, body = await call(http, server, "GET", f"secrets/{path}?version={number}")
            if info["deletion_time"] is None and not info["destroyed"]:
                assert status == 200, body
                out[path]["versions"][number] = body
            else:
                out[path]["versions"][number] = status
    status, out["policy"] = await call(http, server, "GET", "sys/policies/team-read")
    assert status == 200
    return out


async def test_sqlite_to_postgres_and_back_preserves_everything(
    vaultside_server: VaultsideServerFactory,
    pg_dsn_file: Path,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    source = vaultside_server()
    values = [secrets.token_urlsafe(20) for _ in range(4)]
    for value in values[:3]:
        status, _ = await call(http, source, "PUT", "secrets/app/db", {"data": {"pw": value}})
        assert status == 200
    assert (await call(http, source, "POST", "secrets/app/db:delete", {"versions": [2]}))[0] == 204
    status, _ = await call(
        http, source, "PUT", "secrets/app/db:metadata", {"custom_metadata": {"owner": "ops"}}
    )
    assert status == 200
    assert (await call(http, source, "POST", "sys/rotate-key"))[0] == 200  # a second key term
    body = {"data": {"key": values[3]}, "type": "token"}
    assert (await call(http, source, "PUT", "secrets/app/api", body))[0] == 200
    assert (await call(http, source, "PUT", "secrets/team/cfg", {"data": {"a": "b"}}))[0] == 200
    rules = [{"path": "secrets/team/*", "capabilities": ["read"]}]
    assert (await call(http, source, "PUT", "sys/policies/team-read", {"rules": rules}))[0] in (
        200,
        204,
    )
    status, created = await call(
        http, source, "POST", "auth/token/create", {"policies": ["team-read"], "ttl": "1h"}
    )
    token = created["auth"]["token"]
    before = await snapshot(http, source)
    source.stop()

    # SQLite → PostgreSQL
    run = migrate_cli(
        source.data_dir, "--from", "sqlite", "--to", "postgres",
        "--postgres-dsn-file", str(pg_dsn_file), "--json",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["verified"] and report["copied"] == report["source"]["count"] > 10
    assert report["source"]["digest"] == report["destination"]["digest"]
    again = migrate_cli(
        source.data_dir, "--from", "sqlite", "--to", "postgres",
        "--postgres-dsn-file", str(pg_dsn_file),
    )  # fmt: skip
    assert again.returncode == 5 and "not empty" in again.stderr
    check = migrate_cli(
        source.data_dir, "--from", "sqlite", "--to", "postgres",
        "--postgres-dsn-file", str(pg_dsn_file), "--verify-only",
    )  # fmt: skip
    assert check.returncode == 0 and report["source"]["digest"] in check.stdout
    dsn = pg_dsn_file.read_text()
    assert dsn not in run.stdout + run.stderr + again.stderr

    # SECURITY: PostgreSQL holds ciphertext only.
    conn = await asyncpg.connect(dsn)
    try:
        stored = [bytes(r[0]) for r in await conn.fetch("SELECT value FROM vaultside_kv")]
    finally:
        await conn.close()
    assert not any(v.encode() in blob for v in values for blob in stored)

    key_file = str(source.data_dir / "vaultside.key")
    on_pg = vaultside_server(
        VAULTSIDE_STORAGE__KIND="postgres",
        VAULTSIDE_STORAGE__POSTGRES_DSN_FILE=str(pg_dsn_file),
        VAULTSIDE_SEAL__KEY_FILE=key_file,
    )
    assert await snapshot(http, on_pg) == before
    assert (await call(http, on_pg, "GET", "secrets/team/cfg", token=token))[0] == 200
    assert (await call(http, on_pg, "GET", "secrets/app/db", token=token))[0] == 403
    status, written = await call(http, on_pg, "PUT", "secrets/app/db", {"data": {"pw": "v4-on-pg"}})
    assert status == 200 and written["metadata"]["version"] == 4
    after_pg = await snapshot(http, on_pg)
    on_pg.stop()

    # PostgreSQL → a new SQLite file
    back = tmp_path / "back" / "vaultside.db"
    back.parent.mkdir(mode=0o700)
    run = migrate_cli(
        source.data_dir, "--from", "postgres", "--to", "sqlite",
        "--postgres-dsn-file", str(pg_dsn_file), "--sqlite-path", str(back),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "Verified:" in run.stdout
    # Piped: the summary alone, on stdout; no progress lines trailing it on stderr (issue 16).
    assert run.stderr == "", run.stderr
    assert run.stdout.splitlines()[0].startswith("Copied ") and "Verified:" in run.stdout
    on_sqlite = vaultside_server(
        VAULTSIDE_STORAGE__PATH=str(back), VAULTSIDE_SEAL__KEY_FILE=key_file
    )
    assert await snapshot(http, on_sqlite) == after_pg
    status, body = await call(http, on_sqlite, "GET", "secrets/app/db")
    assert status == 200 and body["data"] == {"pw": "v4-on-pg"}
    assert (await call(http, on_sqlite, "GET", "secrets/team/cfg", token=token))[0] == 200
    await asyncio.sleep(0)
