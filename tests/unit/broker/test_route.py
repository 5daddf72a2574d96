"""``/v1/broker`` on the real app and stack (temp SQLite), with an upstream that is not
there: authorization, validation and the unreachable case, without any network service."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.stores import keyed_settings
from vaultside.api.app import create_app
from vaultside.services import Services
from vaultside.wiring.server import build_services


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens here once the socket is closed


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], Services]]:
    settings = keyed_settings(
        tmp_path,
        brokers={"corp": {"address": f"http://127.0.0.1:{closed_port()}", "request_timeout": 2,
                          "kv_versions": {"secret": 2}, "token_file": tmp_path / "t"}},
    )  # type: ignore[arg-type]  # fmt: skip
    (tmp_path / "t").write_text("not-a-real-token")
    services = build_services(settings)
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(services)))
    await client.start_server()
    try:
        yield client, services
    finally:
        await client.close()


async def get(client: TestClient[Any, Any], path: str, token: str) -> tuple[int, str]:
    async with client.get(path, headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, await resp.text()


async def test_policy_is_checked_before_anything_upstream(
    app: tuple[TestClient[Any, Any], Services],
) -> None:
    client, services = app
    token, _ = await services.tokens.create(parent=None, policies=["default"], ttl=60)
    status, _ = await get(client, "/v1/broker/corp/secret/app", token)
    assert status == 403  # not 503: the unreachable upstream was never asked


async def test_unknown_broker_bad_path_and_bad_version_are_400(
    app: tuple[TestClient[Any, Any], Services],
) -> None:
    client, services = app
    root, _ = await services.tokens.create_root()
    status, body = await get(client, "/v1/broker/nope/secret/app", root)
    assert status == 400 and "unknown broker 'nope' (configured: corp)" in body
    status, body = await get(client, "/v1/broker/corp/secret/a%20b", root)
    assert status == 400 and "expected" in body
    status, _ = await get(client, "/v1/broker/corp/secret/app?version=abc", root)
    assert status == 400
    status, _ = await get(client, "/v1/broker/corp/secret/app?bogus=1", root)
    assert status == 400


async def test_unreachable_upstream_is_503_with_the_reason(
    app: tuple[TestClient[Any, Any], Services],
) -> None:
    client, services = app
    root, _ = await services.tokens.create_root()
    status, body = await get(client, "/v1/broker/corp/secret/app", root)
    assert status == 503 and "broker 'corp' is unreachable" in body
    assert "not-a-real-token" not in body
