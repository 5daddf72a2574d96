"""VaultsideClient and HttpSecretSource against an in-process aiohttp server (loopback)."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from vaultside import errors
from vaultside.client import (
    HttpSecretSource,
    NotModified,
    VaultsideClient,
    error_from_response,
)
from vaultside.refs import parse_ref

TOKEN = "vs." + "a" * 40
UNAVAILABLE = errors.UpstreamUnavailableError
INTERNAL = errors.InternalError


class FakeServer:
    """A tiny in-memory server speaking the contract for the routes the tests touch."""

    def __init__(self) -> None:
        self.secrets: dict[str, list[dict[str, str]]] = {}
        self.seen: list[tuple[str, str, dict[str, str]]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/v1/{tail:.*}", self.handle)
        return app

    def _err(self, status: int, msg: str, code: str) -> web.Response:
        body = {"errors": [msg], "code": code, "request_id": "r-1"}
        return web.json_response(body, status=status)

    async def handle(self, req: web.Request) -> web.StreamResponse:
        tail = req.match_info["tail"]
        self.seen.append((req.method, req.path_qs, dict(req.headers)))
        if tail == "sys/health":
            return web.json_response({"initialized": True, "sealed": False, "version": "x"})
        if req.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._err(403, "permission denied", "permission_denied")
        if tail == "resolve":
            body = await req.json()
            out: dict[str, Any] = {}
            for ref in body["refs"]:
                r = parse_ref(ref)
                versions = self.secrets.get(r.path)
                if not versions or r.field not in versions[-1]:
                    return self._err(404, f"no secret at {r.path}", "not_found")
                out[ref] = {
                    "value": versions[-1][r.field],
                    "version": str(len(versions)),
                    "stale": False,
                    "lease_id": None,
                }
            return web.json_response({"values": out})
        if tail.startswith("secrets/"):
            path = tail[len("secrets/") :]
            meta = {
                "version": 0,
                "created_time": "2026-01-01T00:00:00Z",
                "deletion_time": None,
                "destroyed": False,
            }
            if req.method == "PUT":
                body = await req.json()
                cur = self.secrets.setdefault(path, [])
                if "cas" in body and body["cas"] != len(cur):
                    return self._err(409, "check-and-set mismatch", "conflict")
                cur.append(body["data"])
                return web.json_response({"metadata": {**meta, "version": len(cur)}})
            if req.method == "GET" and not path.endswith(":versions"):
                versions = self.secrets.get(path)
                if not versions:
                    return self._err(404, "secret not found", "not_found")
                etag = f'"{len(versions)}"'
                if req.headers.get("If-None-Match") == etag:
                    return web.Response(status=304, headers={"ETag": etag})
                return web.json_response(
                    {"data": versions[-1], "metadata": {**meta, "version": len(versions)}},
                    headers={"ETag": etag},
                )
        if tail == "sys/unsealed-boom":
            return self._err(503, "vaultside is sealed", "sealed")
        return web.Response(status=500, text="not json")


@pytest.fixture
async def server() -> AsyncIterator[tuple[FakeServer, str]]:
    fake = FakeServer()
    ts = TestServer(fake.app(), host="127.0.0.1")
    await ts.start_server()
    try:
        yield fake, f"http://127.0.0.1:{ts.port}"
    finally:
        await ts.close()


async def test_write_read_etag_roundtrip(server: tuple[FakeServer, str]) -> None:
    _fake, addr = server
    value = secrets.token_urlsafe(16)
    async with VaultsideClient(addr, TOKEN) as c:
        meta = await c.write_secret("app/db", {"password": value})
        assert meta.version == 1
        got = await c.read_secret("app/db")
        assert not isinstance(got, NotModified)
        assert got.data == {"password": value}
        assert value not in repr(got)
        assert got.etag == '"1"'
        assert isinstance(await c.read_secret("app/db", etag=got.etag), NotModified)
        with pytest.raises(errors.ConflictError, match="check-and-set mismatch"):
            await c.write_secret("app/db", {"password": "x"}, cas=0)


async def test_errors_map_to_classes(server: tuple[FakeServer, str]) -> None:
    _fake, addr = server
    async with VaultsideClient(addr, TOKEN) as c:
        with pytest.raises(errors.NotFoundError, match="secret not found"):
            await c.read_secret("nope")
        with pytest.raises(errors.InternalError):
            await c.request("GET", "other")
    async with VaultsideClient(addr, "vs.wrong") as c:
        with pytest.raises(errors.PermissionDeniedError):
            await c.read_secret("app/db")
        assert (await c.health())["sealed"] is False  # health needs no token


@pytest.mark.parametrize("bad", ["../sys/policies/root", "a/./b", "a//b", "a:destroy", ""])
async def test_bad_paths_refused_before_sending(server: tuple[FakeServer, str], bad: str) -> None:
    fake, addr = server
    async with VaultsideClient(addr, TOKEN) as c:
        with pytest.raises(errors.InvalidRequestError):
            await c.read_secret(bad)
    assert fake.seen == []


async def test_http_secret_source_resolves_many(server: tuple[FakeServer, str]) -> None:
    fake, addr = server
    v1, v2 = secrets.token_hex(8), secrets.token_hex(8)
    fake.secrets["app/db"] = [{"password": v1, "user": v2}]
    async with VaultsideClient(addr, TOKEN) as c:
        src = HttpSecretSource(c)
        one = await src.resolve(parse_ref("kv:app/db#password"))
        assert one.value == v1 and one.version == "1" and v1 not in repr(one)
        many = await src.resolve_many(["kv:app/db#password", parse_ref("kv:app/db#user")])
        assert {k: r.value for k, r in many.items()} == {
            "kv:app/db#password": v1,
            "kv:app/db#user": v2,
        }
        with pytest.raises(errors.NotFoundError):
            await src.resolve_many(["kv:app/db#password", "kv:missing/x#y"])
        assert await src.resolve_many([]) == {}


async def test_unreachable_server_is_upstream_unavailable() -> None:
    async with VaultsideClient("http://127.0.0.1:9", TOKEN, timeout=2) as c:
        with pytest.raises(errors.UpstreamUnavailableError) as ei:
            await c.read_secret("a")
    assert TOKEN not in str(ei.value)


@pytest.mark.parametrize(
    ("status", "body", "cls", "message"),
    [
        # As the server sends them: mapped by ``code``.
        (
            400,
            {"errors": ["bad field"], "code": "invalid_request"},
            errors.InvalidRequestError,
            "bad",
        ),
        (
            403,
            {"errors": ["denied"], "code": "permission_denied"},
            errors.PermissionDeniedError,
            "",
        ),
        (404, {"errors": ["x"], "code": "not_found"}, errors.NotFoundError, "x"),
        (405, {"errors": ["m"], "code": "method_not_allowed"}, errors.MethodNotAllowedError, "m"),
        (409, {"errors": ["cas"], "code": "conflict"}, errors.ConflictError, "cas"),
        (413, {"errors": ["big"], "code": "payload_too_large"}, errors.PayloadTooLargeError, "big"),
        (417, {"errors": ["e"], "code": "expectation_failed"}, errors.ExpectationFailedError, "e"),
        (429, {"errors": ["slow"], "code": "too_many_requests"}, errors.TooManyRequestsError, ""),
        (502, {"errors": ["up"], "code": "upstream_error"}, errors.UpstreamError, "up"),
        (503, {"errors": ["vaultside is sealed"], "code": "sealed"}, errors.SealedError, "sealed"),
        (503, {"errors": ["key file gone"], "code": "sealed"}, errors.SealedError, "key file"),
        # The code decides, not the message: an unavailable dependency that says "sealed".
        (503, {"errors": ["transit sealed"], "code": "unavailable"}, UNAVAILABLE, "transit"),
        # The server's own retry deadline: retried again under the client's deadline.
        (503, {"errors": ["gave up"], "code": "deadline_exceeded"}, UNAVAILABLE, "gave up"),
        (
            500,
            {"errors": ["internal error"], "code": "internal", "request_id": "r9"},
            INTERNAL,
            "r9",
        ),
        # No code (an older server, a proxy), an unknown one, or one its status contradicts:
        # mapped by status.
        (400, {"errors": ["bad field"]}, errors.InvalidRequestError, "bad field"),
        (403, {"errors": ["permission denied"]}, errors.PermissionDeniedError, "permission denied"),
        (404, {"errors": ["x"]}, errors.NotFoundError, "x"),
        (409, {"errors": ["cas"]}, errors.ConflictError, "cas"),
        (413, {"errors": ["big"]}, errors.PayloadTooLargeError, "big"),
        (429, {"errors": ["slow"]}, errors.TooManyRequestsError, "slow"),
        (502, {"errors": ["up"]}, errors.UpstreamError, "up"),
        (503, {"errors": ["vaultside is sealed"]}, UNAVAILABLE, "vaultside is sealed"),
        (503, {"errors": ["audit log unavailable"]}, UNAVAILABLE, "audit"),
        (500, {"errors": ["internal error"], "request_id": "r9"}, INTERNAL, "r9"),
        (404, {"errors": ["x"], "code": "from_the_future"}, errors.NotFoundError, "x"),
        (400, {"errors": ["x"], "code": "sealed"}, errors.InvalidRequestError, "x"),
        (418, {"errors": ["teapot"], "code": "teapot"}, INTERNAL, "teapot"),
    ],
)
def test_error_from_response(
    status: int, body: dict[str, Any], cls: type[errors.VaultsideError], message: str
) -> None:
    exc = error_from_response(status, json.dumps(body).encode())
    assert type(exc) is cls
    assert message in exc.message


def test_error_from_non_json_body() -> None:
    exc = error_from_response(404, b"<html>")
    assert isinstance(exc, errors.NotFoundError) and exc.message == "HTTP 404"


def test_from_env_reads_token_file(tmp_path: Path) -> None:
    tok = tmp_path / "tok"
    tok.write_text(TOKEN + "\n")
    c = VaultsideClient.from_env({"VAULTSIDE_TOKEN_FILE": str(tok)})
    assert c.addr == "http://127.0.0.1:8200"
    assert c._token == TOKEN
    assert TOKEN not in repr(c)
    c2 = VaultsideClient.from_env({"VAULTSIDE_ADDR": "http://h:1/", "VAULTSIDE_TOKEN": "t"})
    assert c2.addr == "http://h:1" and c2._token == "t"
    with pytest.raises(errors.InvalidRequestError, match="VAULTSIDE_TOKEN_FILE"):
        VaultsideClient.from_env({"VAULTSIDE_TOKEN_FILE": str(tmp_path / "missing")})


async def test_resolve_many_batches_large_requests(server: tuple[FakeServer, str]) -> None:
    fake, addr = server
    fake.secrets = {f"app/s{i}": [{"k": f"v{i}"}] for i in range(600)}
    async with VaultsideClient(addr, TOKEN) as c:
        got = await HttpSecretSource(c).resolve_many([f"kv:app/s{i}#k" for i in range(600)])
    assert len(got) == 600 and got["kv:app/s599#k"].value == "v599"
    assert [m for m, p, _ in fake.seen if p == "/v1/resolve"] == ["POST"] * 3


async def test_resolve_many_keys_by_the_string_given(server: tuple[FakeServer, str]) -> None:
    fake, addr = server
    fake.secrets["app/db"] = [{"password": "p1"}]
    async with VaultsideClient(addr, TOKEN) as c:
        got = await HttpSecretSource(c).resolve_many(["kv:app/db#password@01"])
    assert list(got) == ["kv:app/db#password@01"]
    assert str(got["kv:app/db#password@01"].ref) == "kv:app/db#password@1"
