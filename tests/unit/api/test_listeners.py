"""Real listeners: TCP on port 0, TLS with optional / required client certs, unix socket."""

from __future__ import annotations

import asyncio
import json
import ssl
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.stores import keyed_settings
from vaultside.api.server import Bound, parse_listen, run_server, tls_context
from vaultside.config.settings import ServerSettings
from vaultside.errors import InvalidRequestError
from vaultside.services import Services
from vaultside.wiring.server import build_services

from .pki import Pki, make_pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


@asynccontextmanager
async def serving(
    tmp_path: Path, *, metrics_listen: str | None = None, **server: Any
) -> AsyncIterator[Bound]:
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    settings = keyed_settings(
        data_dir,
        server={"listen": "127.0.0.1:0", **server},
        metrics={"listen": metrics_listen},
    )
    stop = asyncio.Event()
    ready: asyncio.Future[Bound] = asyncio.get_running_loop().create_future()

    async def on_ready(services: Services, bound: Bound) -> None:
        ready.set_result(bound)

    task = asyncio.create_task(
        run_server(build_services(settings), on_ready=on_ready, stop=stop, handle_signals=False)
    )
    done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    try:
        yield ready.result()
    finally:
        stop.set()
        await task


async def _health(url: str, ctx: ssl.SSLContext | bool | None = None, **kw: Any) -> int:
    async with (
        aiohttp.ClientSession(**kw) as session,
        session.get(f"{url}/v1/sys/health", ssl=ctx if ctx is not None else True) as r,
    ):
        return r.status


def _client_ctx(pki: Pki, with_cert: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if with_cert:
        ctx.load_cert_chain(pki.client_cert, pki.client_key)
    return ctx


async def test_plain_tcp_on_port_zero(tmp_path: Path) -> None:
    async with serving(tmp_path) as bound:
        assert bound.primary.startswith("http://127.0.0.1:")
        assert not bound.primary.endswith(":0")
        assert await _health(bound.primary) == 200


async def test_tls_server_only(tmp_path: Path, pki: Pki) -> None:
    async with serving(
        tmp_path, tls_cert_file=str(pki.server_cert), tls_key_file=str(pki.server_key)
    ) as bound:
        assert bound.primary.startswith("https://")
        assert await _health(bound.primary, _client_ctx(pki, False)) == 200
        with pytest.raises(aiohttp.ClientError):
            await _health(bound.primary.replace("https", "http"))


async def test_tls_optional_client_cert(tmp_path: Path, pki: Pki) -> None:
    async with serving(
        tmp_path,
        tls_cert_file=str(pki.server_cert),
        tls_key_file=str(pki.server_key),
        tls_client_ca_file=str(pki.ca),
    ) as bound:
        assert await _health(bound.primary, _client_ctx(pki, False)) == 200
        assert await _health(bound.primary, _client_ctx(pki, True)) == 200
        async with aiohttp.ClientSession() as session:
            url = f"{bound.primary}/v1/sys/seal-status"
            async with session.get(url, ssl=_client_ctx(pki, True)) as resp:
                assert resp.status == 200
    # The verified client certificate's name is in the audit record.
    records = [
        json.loads(line) for line in (tmp_path / "data" / "audit.log").read_text().splitlines()
    ]
    assert records[-1]["extra"]["tls_client_cn"] == "app-client"


async def test_tls_required_client_cert(tmp_path: Path, pki: Pki) -> None:
    async with serving(
        tmp_path,
        tls_cert_file=str(pki.server_cert),
        tls_key_file=str(pki.server_key),
        tls_client_ca_file=str(pki.ca),
        tls_require_client_cert=True,
    ) as bound:
        assert await _health(bound.primary, _client_ctx(pki, True)) == 200
        with pytest.raises(aiohttp.ClientError):
            await _health(bound.primary, _client_ctx(pki, False))


async def test_unix_socket(tmp_path: Path) -> None:
    sock = tmp_path / "vs.sock"
    async with serving(tmp_path, listen="", unix_socket=str(sock)) as bound:
        assert bound.primary == f"unix://{sock}"
        assert stat.S_IMODE(sock.stat().st_mode) == 0o660
        connector: Callable[[], aiohttp.BaseConnector] = lambda: aiohttp.UnixConnector(str(sock))  # noqa: E731
        assert await _health("http://localhost", connector=connector()) == 200
    assert not sock.exists()


def test_config_errors_are_named() -> None:
    with pytest.raises(InvalidRequestError, match="HOST:PORT"):
        parse_listen("localhost")
    assert parse_listen("[::1]:8200") == ("::1", 8200)
    with pytest.raises(InvalidRequestError, match="both"):
        tls_context(ServerSettings(tls_cert_file=Path("x")), lambda p: p)
    with pytest.raises(InvalidRequestError, match="client_ca"):
        tls_context(ServerSettings(tls_require_client_cert=True, tls_cert_file=Path("a"),
                                   tls_key_file=Path("b")), lambda p: p)  # fmt: skip
    with pytest.raises(InvalidRequestError, match="cannot load TLS files"):
        tls_context(ServerSettings(tls_cert_file=Path("/nonexistent/a"),
                                   tls_key_file=Path("/nonexistent/b")), lambda p: p)  # fmt: skip
