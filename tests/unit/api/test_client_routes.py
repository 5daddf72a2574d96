"""The typed client covers every route of the real app: each ``VaultsideClient`` method is called
against a recording server, and the paths it sent are resolved by the real app's router."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer, make_mocked_request

from vaultside.client import Transport, VaultsideClient

from .conftest import Api

# One answer with every field any method reads.
_META = {"version": 1, "created_time": "2026-01-01T00:00:00.000000Z", "deletion_time": None}
VALUE = "fake-" + "q" * 12
_ANSWER: dict[str, Any] = {
    "data": {"f": VALUE},
    "metadata": _META,
    "auth": {"token": "t", "accessor": "a", "policies": ["p"]},
    "values": {},
    "keys": ["k"],
    "versions": [_META],
    "policies": ["p"],
    "roles": ["r"],
    "policy": {"generator": {}},
    "run": {"result": "ok"},
    "runs": [{"result": "ok"}],
    "leaders": [{"job": "j"}],
    "scans": [{"id": "s1"}],
}

Call = Callable[[VaultsideClient], Awaitable[object]]
Seen = tuple[str, str, Any]
CALLS: dict[str, Call] = {
    "read_secret": lambda c: c.read_secret("app/db", version=1),
    "write_secret": lambda c: c.write_secret("app/db", {"f": "v"}, cas=0),
    "list_secrets": lambda c: c.list_secrets("app"),
    "list_secrets root": lambda c: c.list_secrets(),
    "delete_secret": lambda c: c.delete_secret("app/db"),
    "delete_secret versions": lambda c: c.delete_secret("app/db", [1]),
    "undelete_secret": lambda c: c.undelete_secret("app/db", [1]),
    "destroy_secret": lambda c: c.destroy_secret("app/db", [1]),
    "secret_versions": lambda c: c.secret_versions("app/db"),
    "read_metadata": lambda c: c.read_metadata("app/db"),
    "write_metadata": lambda c: c.write_metadata("app/db", max_versions=3),
    "delete_metadata": lambda c: c.delete_metadata("app/db"),
    "resolve": lambda c: c.resolve(["kv:app/db#f"]),
    "create_token": lambda c: c.create_token(policies=["p"]),
    "lookup_self": lambda c: c.lookup_self(),
    "lookup_token": lambda c: c.lookup_token(accessor="a"),
    "renew_self": lambda c: c.renew_self(),
    "renew_token": lambda c: c.renew_token("a"),
    "revoke_token": lambda c: c.revoke_token(accessor="a"),
    "revoke_self": lambda c: c.revoke_self(),
    "list_policies": lambda c: c.list_policies(),
    "read_policy": lambda c: c.read_policy("p"),
    "write_policy": lambda c: c.write_policy("p", [{"path": "x", "capabilities": ["read"]}]),
    "delete_policy": lambda c: c.delete_policy("p"),
    "jwt_login": lambda c: c.jwt_login("r", "jwt"),
    "list_jwt_roles": lambda c: c.list_jwt_roles(),
    "read_jwt_role": lambda c: c.read_jwt_role("r"),
    "write_jwt_role": lambda c: c.write_jwt_role("r", {"policies": ["p"]}),
    "delete_jwt_role": lambda c: c.delete_jwt_role("r"),
    "health": lambda c: c.health(),
    "seal_status": lambda c: c.seal_status(),
    "rotate_key": lambda c: c.rotate_key(),
    "key_status": lambda c: c.key_status(),
    "leaders": lambda c: c.leaders(),
    "openapi": lambda c: c.openapi(),
    "list_rotation_policies": lambda c: c.list_rotation_policies(),
    "read_rotation_policy": lambda c: c.read_rotation_policy("app/db"),
    "write_rotation_policy": lambda c: c.write_rotation_policy("app/db", {"generator": {}}),
    "delete_rotation_policy": lambda c: c.delete_rotation_policy("app/db"),
    "rotate": lambda c: c.rotate("app/db"),
    "rotation_status": lambda c: c.rotation_status("app/db"),
    "rotation_history": lambda c: c.rotation_history("app/db", limit=5),
    "report_consumer": lambda c: c.report_consumer("c1", "sidecar", {"app/db": 1}),
    "read_brokered": lambda c: c.read_brokered("corp", "secret", "app/db", version=2),
    "read_brokered_metadata": lambda c: c.read_brokered_metadata("corp", "secret", "app/db"),
    "start_scan": lambda c: c.start_scan("image", ["busybox:latest"]),
    "list_scans": lambda c: c.list_scans(),
    "read_scan": lambda c: c.read_scan("s1"),
    "known_index": lambda c: c.known_index(),
}
# Routes no typed method is for: the Prometheus scrape (text, for scrapers, not the client)
# and the POST alias of the secret write (for Vault habits; the client writes with PUT).
NOT_CLIENT_ROUTES = {("GET", "/metrics"), ("POST", "/v1/secrets/{path}")}


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[list[Seen], str]]:
    seen: list[Seen] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        seen.append((request.method, request.raw_path, body))
        if request.path.startswith("/v1/broker/"):
            return web.json_response(_ANSWER, headers={"X-Vaultside-Stale": "true"})
        if request.path.endswith("/app/db:metadata"):  # SecretMeta: versions by number
            return web.json_response(_ANSWER | {"versions": {"1": _META}})
        return web.json_response(_ANSWER)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield seen, f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


def test_every_typed_method_is_exercised() -> None:
    own = {
        name
        for name, fn in inspect.getmembers(VaultsideClient, inspect.iscoroutinefunction)
        if not name.startswith("_") and not hasattr(Transport, name)
    }
    assert own == {name.split()[0] for name in CALLS}


async def test_the_typed_methods_cover_every_route(
    api: Api, recorder: tuple[list[Seen], str]
) -> None:
    seen, addr = recorder
    async with VaultsideClient(addr, "vs.t") as client:
        for call in CALLS.values():
            await call(client)
    app = api.client.server.app
    assert app is not None
    used: set[tuple[str, str]] = set()
    for method, path, _ in seen:
        match = await app.router.resolve(make_mocked_request(method, path, app=app))
        assert match.http_exception is None, (method, path)
        resource = match.route.resource
        assert resource is not None
        used.add((method, resource.canonical))
    routes = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method not in ("HEAD", "*")
    }
    assert routes - used == NOT_CLIENT_ROUTES


async def test_new_typed_methods_send_what_the_routes_read(
    recorder: tuple[list[Seen], str],
) -> None:
    seen, addr = recorder
    async with VaultsideClient(addr, "vs.t") as client:
        run = await client.rotate("app/db")
        history = await client.rotation_history("app/db", limit=5)
        await client.report_consumer("c1", "plugin", {"app/db": 3}, container="abc")
        brokered = await client.read_brokered("corp", "secret", "app/db", version=2)
        await client.start_scan("containers", ["web"], rotate_leaked=True)
        scans = await client.list_scans()
    assert run == {"result": "ok"} and history == [{"result": "ok"}] and scans == [{"id": "s1"}]
    assert brokered.stale and brokered.data == {"f": VALUE} and VALUE not in repr(brokered)
    assert seen == [
        ("POST", "/v1/rotation/rotate/app/db", None),
        ("GET", "/v1/rotation/history/app/db?limit=5", None),
        (
            "POST",
            "/v1/consumers",
            {"consumer": "c1", "kind": "plugin", "holdings": {"app/db": 3}, "container": "abc"},
        ),
        ("GET", "/v1/broker/corp/secret/app/db?version=2", None),
        (
            "POST",
            "/v1/scans",
            {"kind": "containers", "targets": ["web"], "all": False, "rotate_leaked": True},
        ),
        ("GET", "/v1/scans", None),
    ]
