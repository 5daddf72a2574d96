"""Smoke tests proving each integration fixture gives a working real service."""

from __future__ import annotations

import secrets

import asyncpg
import hvac
import pytest

from .services.docker_engine import DockerEngine
from .services.openbao import OpenBaoServer
from .services.postgres import PostgresCluster


def test_docker_runs_busybox_without_network(
    docker_engine: DockerEngine, busybox_image: str
) -> None:
    word = secrets.token_hex(4)
    out = docker_engine.client.containers.run(
        busybox_image,
        ["sh", "-c", f"echo {word}; ls /sys/class/net"],
        network_mode="none",
        remove=True,
    )
    lines = out.decode().split()
    assert lines[0] == word
    assert lines[1:] == ["lo"]
    assert docker_engine.env["DOCKER_HOST"] == docker_engine.base_url
    assert docker_engine.data_root.is_dir()


def test_openbao_health_and_kv_roundtrip(openbao: OpenBaoServer) -> None:
    client = hvac.Client(url=openbao.addr, token=openbao.root_token)
    assert client.sys.read_health_status(method="GET")["sealed"] is False
    value = secrets.token_urlsafe(16)
    client.secrets.kv.v2.create_or_update_secret(path="smoke/app", secret={"password": value})
    read = client.secrets.kv.v2.read_secret_version(path="smoke/app", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"password": value}
    assert openbao.audit_log.exists()
    audit = openbao.audit_log.read_text()
    assert "smoke/app" in audit
    assert value not in audit  # the file device HMACs values


def test_openbao_restart_keeps_root_token_and_loses_data(openbao: OpenBaoServer) -> None:
    client = hvac.Client(url=openbao.addr, token=openbao.root_token)
    client.secrets.kv.v2.create_or_update_secret(path="smoke/ephemeral", secret={"k": "v"})
    openbao.stop()
    openbao.start()
    client = hvac.Client(url=openbao.addr, token=openbao.root_token)
    assert client.is_authenticated()
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.secrets.kv.v2.read_secret_version(
            path="smoke/ephemeral", raise_on_deleted_version=True
        )


async def test_postgres_accepts_password_connection(postgres: PostgresCluster) -> None:
    conn = await asyncpg.connect(postgres.dsn)
    try:
        assert await conn.fetchval("SELECT 1 + 1") == 2
    finally:
        await conn.close()
    bad = postgres.dsn.replace(f":{postgres.port}/", f":{postgres.port}/").replace(
        f"{postgres.user}:", f"{postgres.user}:wrong", 1
    )
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(bad)


async def test_postgres_restart_keeps_data(postgres: PostgresCluster) -> None:
    conn = await asyncpg.connect(postgres.dsn)
    await conn.execute("CREATE TABLE IF NOT EXISTS smoke (v text)")
    await conn.execute("INSERT INTO smoke VALUES ('kept')")
    await conn.close()
    postgres.stop()
    with pytest.raises(OSError):
        await asyncpg.connect(postgres.dsn, timeout=5)
    postgres.start()
    conn = await asyncpg.connect(postgres.dsn)
    try:
        assert "kept" in [r["v"] for r in await conn.fetch("SELECT v FROM smoke")]
    finally:
        await conn.close()
