"""Client environment parity with Vault's CLI: CAPATH, TLS_SERVER_NAME, CLIENT_TIMEOUT,
MAX_RETRIES, and a clear error for an address without a scheme.

TLS cases run against a real aiohttp TLS listener on loopback with a throwaway CA.
"""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from click.testing import CliRunner

from tests.unit.api.pki import Pki, make_pki
from vaultside import errors
from vaultside.cli.main import cli
from vaultside.client import VaultsideClient

SERVER_NAME = "vaultside.internal"


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"sealed": False})


@asynccontextmanager
async def _tls_server(pki: Pki) -> AsyncIterator[str]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    app = web.Application()
    app.router.add_get("/v1/sys/health", _health)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    try:
        yield f"https://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def _capath(pki: Pki, directory: Path) -> Path:
    """A CA directory in OpenSSL's hashed layout (what VAULT_CAPATH points at)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    directory.mkdir()
    shutil.copy(pki.ca, directory / "ca.pem")
    subprocess.run(["openssl", "rehash", str(directory)], check=True, capture_output=True)
    return directory


async def test_capath_trusts_a_directory_of_cas(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    capath = _capath(pki, tmp_path / "cas")
    async with _tls_server(pki) as addr:
        env = {"VAULTSIDE_ADDR": addr, "VAULTSIDE_CAPATH": str(capath)}
        async with VaultsideClient.from_env(env) as c:
            assert (await c.health())["sealed"] is False
        async with VaultsideClient.from_env({"VAULTSIDE_ADDR": addr}) as c:
            with pytest.raises(errors.UpstreamUnavailableError, match="TLS"):
                await c.health()


async def test_tls_server_name_verifies_the_certificate_for_that_name(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, dns_name=SERVER_NAME)
    async with _tls_server(pki) as addr:
        env = {"VAULTSIDE_ADDR": addr, "VAULTSIDE_CACERT": str(pki.ca)}
        async with VaultsideClient.from_env(env) as c:
            with pytest.raises(errors.UpstreamUnavailableError, match="TLS"):
                await c.health()  # the certificate is for SERVER_NAME, not 127.0.0.1
        async with VaultsideClient.from_env({**env, "VAULTSIDE_TLS_SERVER_NAME": SERVER_NAME}) as c:
            assert (await c.health())["sealed"] is False
        wrong = {**env, "VAULTSIDE_TLS_SERVER_NAME": "other.internal"}
        async with VaultsideClient.from_env(wrong) as c:
            with pytest.raises(errors.UpstreamUnavailableError, match="TLS"):
                await c.health()


@pytest.mark.parametrize(
    ("text", "seconds"), [("", 30.0), ("5", 5.0), ("1.5", 1.5), ("90s", 90.0), ("2m", 120.0)]
)
def test_client_timeout(text: str, seconds: float) -> None:
    c = VaultsideClient.from_env({"VAULTSIDE_CLIENT_TIMEOUT": text})
    assert c.timeout == seconds


@pytest.mark.parametrize("text", ["soon", "-1", "0", "nan"])
def test_client_timeout_invalid_names_the_variable(text: str) -> None:
    with pytest.raises(errors.InvalidRequestError, match="VAULTSIDE_CLIENT_TIMEOUT"):
        VaultsideClient.from_env({"VAULTSIDE_CLIENT_TIMEOUT": text})


@pytest.mark.parametrize(("text", "count"), [("", None), ("0", 0), ("3", 3), (" 2 ", 2)])
def test_max_retries_is_passed_to_the_transport(text: str, count: int | None) -> None:
    c = VaultsideClient.from_env({"VAULTSIDE_MAX_RETRIES": text})
    assert c.max_retries == count


@pytest.mark.parametrize("text", ["-1", "two", "1.5", "1000"])
def test_max_retries_invalid_names_the_variable(text: str) -> None:
    with pytest.raises(errors.InvalidRequestError, match="VAULTSIDE_MAX_RETRIES"):
        VaultsideClient.from_env({"VAULTSIDE_MAX_RETRIES": text})


@pytest.mark.parametrize(
    "addr", ["127.0.0.1:8200", "vault.example:8200", "localhost", "ftp://127.0.0.1:8200", "http://"]
)
def test_address_without_http_scheme_is_a_clear_error(addr: str) -> None:
    with pytest.raises(errors.InvalidRequestError, match="VAULTSIDE_ADDR") as info:
        VaultsideClient.from_env({"VAULTSIDE_ADDR": addr})
    assert "http://" in info.value.message and "https://" in info.value.message


def test_cli_address_without_scheme_exits_2_with_one_line() -> None:
    result = CliRunner().invoke(
        cli, ["secret", "get", "app/db"], env={"VAULTSIDE_ADDR": "127.0.0.1:8200"}
    )
    assert result.exit_code == 2, result.output
    assert "NonHttpUrl" not in result.output
    assert result.output.startswith("Error: VAULTSIDE_ADDR 127.0.0.1:8200 has no scheme")


def test_address_with_credentials_is_not_echoed() -> None:
    user_info = "u:" + "p" * 12
    with pytest.raises(errors.InvalidRequestError) as info:
        VaultsideClient.from_env({"VAULTSIDE_ADDR": f"{user_info}@host:8200"})
    assert user_info not in info.value.message


def test_cli_client_env_errors_exit_2() -> None:
    run: Callable[[dict[str, str]], int] = lambda env: (  # noqa: E731
        CliRunner().invoke(cli, ["secret", "list"], env=env).exit_code
    )
    assert run({"VAULTSIDE_CLIENT_TIMEOUT": "soon"}) == 2
    assert run({"VAULTSIDE_MAX_RETRIES": "many"}) == 2


def test_every_variable_the_client_reads_is_documented() -> None:
    """A VAULTSIDE_* name read in client/transport.py without a CLIENT_ENV line fails here."""
    from vaultside.client import DEFAULT_ADDR, DEFAULT_TIMEOUT
    from vaultside.client import transport as client_module
    from vaultside.client_env import CLIENT_ENV

    source = Path(client_module.__file__).read_text()
    read = set(re.findall(r"env\.get\(\s*\"(VAULTSIDE_[A-Z_]+)\"", source))
    assert read and read - set(CLIENT_ENV) == set()
    assert DEFAULT_ADDR in CLIENT_ENV["VAULTSIDE_ADDR"]
    assert f"default {DEFAULT_TIMEOUT:g})" in CLIENT_ENV["VAULTSIDE_CLIENT_TIMEOUT"]
