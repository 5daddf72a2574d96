"""The client transport follows the shared retry rules (``vaultside.retry``).

Servers are aiohttp apps on a unix socket in the test's temp dir: no ports, no network.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web

from vaultside import errors
from vaultside.client import DEFAULT_RETRY_TIMEOUT, VaultsideClient
from vaultside.inject.roles import Role
from vaultside.refs import parse_ref
from vaultside.retry import RetryPolicy
from vaultside.wiring.plugin import RoleClients

Answer = Callable[[int], web.Response]  # call number (from 1) -> response


def _sealed() -> web.Response:
    body = {"errors": ["vaultside is sealed"], "code": "sealed", "request_id": "r0"}
    return web.json_response(body, status=503)


def _internal() -> web.Response:
    body = {"errors": ["internal error"], "code": "internal", "request_id": "r1"}
    return web.json_response(body, status=500)


class Server:
    """One aiohttp app on a unix socket; counts calls; ``answer`` decides each response."""

    def __init__(self, sock: Path, answer: Answer) -> None:
        self.sock, self.answer, self.calls = sock, answer, 0
        self.runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        return self.answer(self.calls)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.UnixSite(self.runner, str(self.sock)).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[[Answer], Server]]:
    started: list[Server] = []

    def make(answer: Answer) -> Server:
        server = Server(tmp_path / f"s{len(started)}.sock", answer)
        started.append(server)
        return server

    yield make
    for server in started:
        await server.stop()


def client(sock: Path, timeout: float = 10.0, token: str | None = None) -> VaultsideClient:
    policy = RetryPolicy(timeout=timeout, base=0.02, cap=0.1)
    return VaultsideClient("http://localhost", token, unix_socket=sock, retry=policy)


async def test_waits_for_a_server_that_starts_later(serve) -> None:
    server = serve(lambda n: web.json_response({"sealed": False}))
    async with client(server.sock) as c:
        call = asyncio.create_task(c.health())
        await asyncio.sleep(0.5)  # nothing listens yet: connection failures are retried
        assert not call.done()
        await server.start()
        assert await asyncio.wait_for(call, 5) == {"sealed": False}


async def test_sealed_then_ready_is_retried_for_a_write(serve) -> None:
    ok = web.json_response({"metadata": {"version": 1, "created_time": ""}})
    server = serve(lambda n: _sealed() if n < 3 else ok)
    await server.start()
    async with client(server.sock) as c:
        info = await c.write_secret("app/x", {"k": "v"})
    assert info.version == 1 and server.calls == 3


async def test_500_is_retried_for_reads_only(serve) -> None:
    server = serve(lambda n: _internal() if n < 2 else web.json_response({"sealed": False}))
    await server.start()
    async with client(server.sock) as c:
        assert await c.health() == {"sealed": False}
        assert server.calls == 2
        server.calls = 0  # a POST that failed with 500 may have been applied: not repeated
        with pytest.raises(errors.InternalError):
            await c.write_secret("app/x", {"k": "v"})
        assert server.calls == 1


async def test_4xx_is_final(serve) -> None:
    server = serve(lambda n: web.json_response({"errors": ["permission denied"]}, status=403))
    await server.start()
    async with client(server.sock) as c:
        with pytest.raises(errors.PermissionDeniedError):
            await c.health()
    assert server.calls == 1


async def test_deadline_exceeded_logs_each_step_without_the_token(
    serve, caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(lambda n: _sealed())
    await server.start()
    token = f"vs_{secrets.token_hex(16)}"
    caplog.set_level(logging.DEBUG)
    async with client(server.sock, timeout=0.5, token=token) as c:
        with pytest.raises(errors.DeadlineExceededError, match="sealed"):
            await c.read_secret("app/x")
    steps = [r for r in caplog.records if r.getMessage() == "retrying"]
    assert len(steps) == server.calls - 1 >= 3
    assert token not in caplog.text


def test_from_env_retry_timeout() -> None:
    env = {"VAULTSIDE_ADDR": "http://127.0.0.1:1"}
    assert VaultsideClient.from_env(env).retry.timeout == DEFAULT_RETRY_TIMEOUT
    assert VaultsideClient.from_env(env | {"VAULTSIDE_RETRY_TIMEOUT": "2.5"}).retry.timeout == 2.5
    assert not VaultsideClient.from_env(env | {"VAULTSIDE_RETRY_TIMEOUT": "0"}).retry.retries
    with pytest.raises(errors.InvalidRequestError, match="VAULTSIDE_RETRY_TIMEOUT"):
        VaultsideClient.from_env(env | {"VAULTSIDE_RETRY_TIMEOUT": "soon"})


async def test_plugin_mount_path_fails_fast_when_the_server_is_down(tmp_path: Path) -> None:
    # The plugin's Mount must answer within dockerd's timeout: no retries on its clients.
    clients = RoleClients({"VAULTSIDE_SOCKET": str(tmp_path / "absent.sock")})
    source = clients(Role("web", {}))
    t0 = time.monotonic()
    try:
        with pytest.raises(errors.UpstreamUnavailableError, match="cannot reach vaultside") as info:
            await source.resolve(parse_ref("kv:app/db#password"))
    finally:
        await clients.close()
    assert not isinstance(info.value, errors.DeadlineExceededError)
    assert time.monotonic() - t0 < 1.0


async def test_max_retries_bounds_the_count_too(serve) -> None:
    server = serve(lambda n: _sealed())
    await server.start()
    policy = RetryPolicy(timeout=30, base=0.01, cap=0.02)
    c = VaultsideClient("http://localhost", None, unix_socket=server.sock, retry=policy,
                        max_retries=2)  # fmt: skip
    async with c:
        with pytest.raises(errors.DeadlineExceededError, match="3 attempt"):
            await c.health()
    assert server.calls == 3
    env = {"VAULTSIDE_ADDR": "http://127.0.0.1:1", "VAULTSIDE_MAX_RETRIES": "0"}
    assert not VaultsideClient.from_env(env).retry.retries
