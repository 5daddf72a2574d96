"""``api.protocol`` leans on aiohttp internals: these tests fail loudly if aiohttp changes them."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from vaultside.api.protocol import GuardedAppRunner
from vaultside.api.state import EXPECT, MALFORMED

_INTERNALS = (
    "_make_error_handler",
    "_request_count",
    "_waiter",
    "_messages",
    "_current_request",
    "_request_in_progress",
    "_request_handler",
)


async def test_the_aiohttp_internals_we_rely_on_exist() -> None:
    slots = {name for cls in RequestHandler.__mro__ for name in getattr(cls, "__slots__", ())}
    for name in _INTERNALS:
        assert name in slots or hasattr(RequestHandler, name), name
    server = web.Server(lambda request: None)  # type: ignore[arg-type,return-value]
    assert hasattr(server, "_kwargs") and hasattr(server, "_loop")


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=f"expect={request.get(EXPECT)}")

    @web.middleware
    async def mark(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
        malformed = request.get(MALFORMED)
        if malformed is not None:
            return web.Response(status=400, text=f"malformed={malformed}")
        return await handler(request)

    app = web.Application(middlewares=[mark])
    app.router.add_route("*", "/x", echo)
    runner = GuardedAppRunner(app, header_read_timeout=0.3, keepalive_timeout=5, access_log=None)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        await runner.cleanup()


async def _exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(4096), timeout=3)
    finally:
        writer.close()


async def test_a_parser_error_reaches_the_app_middlewares(port: int) -> None:
    reply = await _exchange(port, b"GARBAGE\r\n\r\n")
    assert reply.startswith(b"HTTP/1.0 400") or reply.startswith(b"HTTP/1.1 400"), reply
    assert b"malformed=BadHttpMethod" in reply


async def test_expect_is_taken_off_and_handed_to_the_app(port: int) -> None:
    reply = await _exchange(
        port, b"GET /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    assert not reply.startswith(b"HTTP/1.1 100"), reply
    assert b"expect=100-continue" in reply


async def test_a_half_head_is_closed_after_the_header_read_timeout(port: int) -> None:
    started = asyncio.get_running_loop().time()
    reply = await _exchange(port, b"GET /x HTTP/1.1\r\nHost: x\r\nX-Half: ")
    assert reply == b""
    assert asyncio.get_running_loop().time() - started < 2.5
