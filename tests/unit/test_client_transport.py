"""Client transports: mutual TLS with a CA file and a client cert, and a unix socket."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from vaultside import errors
from vaultside.client import VaultsideClient


@dataclass
class Pki:
    ca: Path
    server: tuple[Path, Path]
    client: tuple[Path, Path]
    other_ca: Path


def _cert(
    tmp: Path, name: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *, ca: bool = False, ip: str | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path, Path]:  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    cert_path, key_path = tmp / f"{name}.pem", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key, cert_path, key_path


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca_cert, ca_key, ca_path, _ = _cert(tmp_path, "ca", None, ca=True)
    *_, srv_cert, srv_key = _cert(tmp_path, "server", (ca_cert, ca_key), ip="127.0.0.1")
    *_, cli_cert, cli_key = _cert(tmp_path, "client", (ca_cert, ca_key))
    *_, other_ca, _ = _cert(tmp_path, "other-ca", None, ca=True)
    return Pki(ca_path, (srv_cert, srv_key), (cli_cert, cli_key), other_ca)


async def _health(request: web.Request) -> web.Response:
    peer = request.transport.get_extra_info("peercert") if request.transport else None
    return web.json_response({"sealed": False, "client_cert": bool(peer)})


@pytest.fixture
async def tls_addr(pki: Pki) -> AsyncIterator[str]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    ctx.load_cert_chain(str(pki.server[0]), str(pki.server[1]))
    ctx.verify_mode = ssl.CERT_REQUIRED
    app = web.Application()
    app.router.add_get("/v1/sys/health", _health)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_mutual_tls(tls_addr: str, pki: Pki) -> None:
    async with VaultsideClient(tls_addr, None, ca_file=pki.ca, client_cert=pki.client) as c:
        assert await c.health() == {"sealed": False, "client_cert": True}


async def test_tls_refuses_unknown_server_ca(tls_addr: str, pki: Pki) -> None:
    async with VaultsideClient(tls_addr, None, ca_file=pki.other_ca, client_cert=pki.client) as c:
        with pytest.raises(errors.UpstreamUnavailableError, match="TLS with vaultside"):
            await c.health()


async def test_tls_without_client_cert_is_refused(tls_addr: str, pki: Pki) -> None:
    async with VaultsideClient(tls_addr, None, ca_file=pki.ca) as c:
        with pytest.raises(errors.UpstreamUnavailableError):
            await c.health()


def test_from_env_tls_settings(pki: Pki) -> None:
    c = VaultsideClient.from_env(
        {
            "VAULTSIDE_ADDR": "https://127.0.0.1:1",
            "VAULTSIDE_CACERT": str(pki.ca),
            "VAULTSIDE_CLIENT_CERT": str(pki.client[0]),
            "VAULTSIDE_CLIENT_KEY": str(pki.client[1]),
        }
    )
    ctx = c._ssl_context()
    assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


async def test_unix_socket(tmp_path: Path) -> None:
    app = web.Application()
    app.router.add_get("/v1/sys/health", _health)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = tmp_path / "vs.sock"
    await web.UnixSite(runner, str(sock)).start()
    try:
        async with VaultsideClient("http://localhost", None, unix_socket=sock) as c:
            assert (await c.health())["sealed"] is False
    finally:
        await runner.cleanup()
