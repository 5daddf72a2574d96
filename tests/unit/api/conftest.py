"""A real app over a real temp-SQLite stack (no mocks), driven by aiohttp's test client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.stores import keyed_settings
from vaultside.api.app import create_app
from vaultside.clock import FakeClock
from vaultside.config.settings import Settings
from vaultside.services import Services
from vaultside.wiring.server import build_services


@dataclass
class Api:
    """The client, a root token, and the services behind the app."""

    client: TestClient[Any, Any]
    root: str
    services: Services
    clock: FakeClock
    settings: Settings

    def auth(self, token: str | None = None) -> dict[str, str]:
        """Headers carrying ``token`` (the root token by default)."""
        return {"Authorization": f"Bearer {token or self.root}"}

    async def token(self, *policies: str, **kw: Any) -> str:
        """A fresh token with ``policies``, created directly in the store."""
        token, _ = await self.services.tokens.create(
            parent=None, policies=list(policies), ttl=kw.pop("ttl", 3600.0), **kw
        )
        return token

    async def policy(self, name: str, rules: list[dict[str, Any]]) -> None:
        """Write a policy through the API."""
        resp = await self.client.put(
            f"/v1/sys/policies/{name}", json={"rules": rules}, headers=self.auth()
        )
        assert resp.status == 204, await resp.text()


def make_settings(data_dir: Path, **kw: Any) -> Settings:
    """Settings for a test stack under ``data_dir`` (audit file on, no env/toml influence)."""
    return Settings(data_dir=data_dir, **kw)


ApiFactory = Callable[..., Any]


@pytest.fixture
async def make_api(tmp_path: Path) -> AsyncIterator[ApiFactory]:
    """Factory: ``await make_api(**settings)`` → a started ``Api``; ``key=False`` for sealed."""
    clients: list[TestClient[Any, Any]] = []

    async def factory(*, key: bool = True, **settings_kw: Any) -> Api:
        data_dir = tmp_path / f"stack{len(clients)}"
        data_dir.mkdir()
        settings = (keyed_settings if key else make_settings)(data_dir, **settings_kw)
        clock = FakeClock()
        services = build_services(settings, clock=clock)
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(services)))
        await client.start_server()
        clients.append(client)
        root = ""
        if key:
            root, _ = await services.tokens.create_root()
        return Api(client, root, services, clock, settings)

    yield factory
    for client in clients:
        await client.close()


@pytest.fixture
async def api(make_api: ApiFactory) -> Api:
    """A started, unsealed stack with a root token."""
    result: Api = await make_api()
    return result
