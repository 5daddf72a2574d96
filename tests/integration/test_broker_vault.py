"""Broker against a REAL OpenBao dev server: KV v1/v2, AppRole, JWT, token renewal and
re-login, stale-if-error across an OpenBao stop/restart, bad references and unknown brokers.

OpenBao dev mode loses its data on restart, so every test (re)configures what it needs with
the root token (``setup_bao``) and the outage test re-seeds its secret after the restart.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import hvac
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from vaultside.broker.source import Broker, BrokerRegistry
from vaultside.broker.vault import UpstreamForbiddenError
from vaultside.clock import SystemClock
from vaultside.config.settings import BrokerSettings
from vaultside.errors import (
    InvalidRequestError,
    NotFoundError,
    UpstreamUnavailableError,
)
from vaultside.refs import parse_ref
from vaultside.storage.sqlite import SqliteStorage

from .services.openbao import OpenBaoServer

pytestmark = pytest.mark.openbao

READER_POLICY = """
path "secret/*" { capabilities = ["read", "list"] }
path "kv1/*" { capabilities = ["read", "list"] }
path "database/creds/*" { capabilities = ["read"] }
path "transit/encrypt/vaultside" { capabilities = ["update"] }
path "transit/decrypt/vaultside" { capabilities = ["update"] }
"""


def admin(openbao: OpenBaoServer) -> hvac.Client:
    return hvac.Client(url=openbao.addr, token=openbao.root_token)


def setup_bao(openbao: OpenBaoServer) -> hvac.Client:
    """Idempotently enable kv1, approle and the reader policy (dev mode forgets on restart)."""
    client = admin(openbao)
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    if "kv1/" not in mounts:
        client.sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
    if "approle/" not in client.sys.list_auth_methods()["data"]:
        client.sys.enable_auth_method("approle")
    client.sys.create_or_update_policy("vs-reader", READER_POLICY)
    return client


async def make_broker(
    tmp_path: Path, name: str = "corp", **settings: object
) -> AsyncIterator[Broker]:
    storage = SqliteStorage(tmp_path / f"{name}.db")
    await storage.open()
    broker = Broker(name, BrokerSettings(**settings), storage, SystemClock())  # type: ignore[arg-type]
    await broker.start()
    try:
        yield broker
    finally:
        await broker.close()
        await storage.close()


def token_file(tmp_path: Path, token: str) -> Path:
    path = tmp_path / "bao-token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
async def root_broker(openbao: OpenBaoServer, tmp_path: Path) -> AsyncIterator[Broker]:
    setup_bao(openbao)
    async for broker in make_broker(
        tmp_path, address=openbao.addr, token_file=token_file(tmp_path, openbao.root_token)
    ):
        yield broker


async def test_kv2_latest_pinned_and_metadata(openbao: OpenBaoServer, root_broker: Broker) -> None:
    client = admin(openbao)
    path = f"app-{secrets.token_hex(4)}/db"
    v1, v2 = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    client.secrets.kv.v2.create_or_update_secret(path=path, secret={"password": v1})
    client.secrets.kv.v2.create_or_update_secret(path=path, secret={"password": v2, "n": 3})
    latest = await root_broker.read("secret", path)
    assert (latest.kind, latest.version, latest.data["password"]) == ("kv2", "2", v2)
    assert latest.data["n"] == "3"  # non-string values come back as JSON text
    pinned = await root_broker.read("secret", path, 1)
    assert (pinned.version, pinned.data) == ("1", {"password": v1})
    meta = await root_broker.read_metadata("secret", path)
    assert meta["current_version"] == 2 and set(meta["versions"]) == {"1", "2"}  # type: ignore[arg-type]
    assert v1 not in json.dumps(meta) and v2 not in json.dumps(meta)
    client.secrets.kv.v2.delete_secret_versions(path=path, versions=[1])
    root_broker.cache.clear()
    with pytest.raises(NotFoundError):
        await root_broker.read("secret", path, 1)
    with pytest.raises(NotFoundError):
        await root_broker.read("secret", f"{path}-missing")


async def test_kv1_read_and_version_rejected(openbao: OpenBaoServer, root_broker: Broker) -> None:
    value = secrets.token_urlsafe(12)
    admin(openbao).secrets.kv.v1.create_or_update_secret(
        path="app/api", secret={"key": value}, mount_point="kv1"
    )
    read = await root_broker.read("kv1", "app/api")
    assert (read.kind, read.data) == ("kv1", {"key": value})
    with pytest.raises(InvalidRequestError, match="KV v1"):
        await root_broker.read("kv1", "app/api", 2)


async def test_registry_resolves_refs_and_rejects_unknown_broker(
    openbao: OpenBaoServer, root_broker: Broker
) -> None:
    value = secrets.token_urlsafe(12)
    admin(openbao).secrets.kv.v2.create_or_update_secret(path="ref/app", secret={"pw": value})
    registry = BrokerRegistry({"corp": root_broker})
    resolved = await registry.resolve(parse_ref("vault:corp/secret/ref/app#pw"))
    assert resolved.value == value and resolved.version == "1" and not resolved.stale
    assert value not in repr(resolved)
    with pytest.raises(InvalidRequestError, match="unknown broker 'nope'") as err:
        await registry.resolve(parse_ref("vault:nope/secret/ref/app#pw"))
    assert err.value.status == 400
    with pytest.raises(InvalidRequestError, match="no field"):
        await registry.resolve(parse_ref("vault:corp/secret/ref/app#other"))
    for bad in ("vault:corp/secret#pw", "vault:corp/secret/../x#pw", "vault:corp/secret/app"):
        with pytest.raises(InvalidRequestError, match="expected kv:<path>"):
            parse_ref(bad)


async def test_approle_login_plain_and_wrapped_secret_id(
    openbao: OpenBaoServer, tmp_path: Path
) -> None:
    client = setup_bao(openbao)
    client.auth.approle.create_or_update_approle(
        "vs-broker", token_policies=["vs-reader"], token_ttl="60s", token_max_ttl="10m"
    )
    role_id = client.auth.approle.read_role_id("vs-broker")["data"]["role_id"]
    (tmp_path / "role_id").write_text(role_id)
    value = secrets.token_urlsafe(12)
    client.secrets.kv.v2.create_or_update_secret(path="approle/app", secret={"pw": value})

    secret_id = client.auth.approle.generate_secret_id("vs-broker")["data"]["secret_id"]
    (tmp_path / "secret_id").write_text(secret_id)
    async for broker in make_broker(
        tmp_path, "plain", address=openbao.addr, auth_method="approle",
        role_id_file=tmp_path / "role_id", secret_id_file=tmp_path / "secret_id",
    ):  # fmt: skip
        assert (await broker.read("secret", "approle/app")).data["pw"] == value
        assert broker.auth.logins == 1

    wrapped = client.adapter.post("/v1/auth/approle/role/vs-broker/secret-id", wrap_ttl="60s")[
        "wrap_info"
    ]["token"]
    (tmp_path / "wrapped").write_text(wrapped)
    async for broker in make_broker(
        tmp_path, "wrapped", address=openbao.addr, auth_method="approle",
        role_id_file=tmp_path / "role_id", secret_id_file=tmp_path / "wrapped",
        secret_id_wrapped=True,
    ):  # fmt: skip
        assert (await broker.read("secret", "approle/app")).data["pw"] == value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_jwt(key: rsa.RSAPrivateKey, claims: dict[str, object]) -> str:
    header = _b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "test"}).encode())
    body = _b64(json.dumps(claims).encode())
    signature = key.sign(f"{header}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{body}.{_b64(signature)}"


async def test_jwt_login_with_generated_key_pair(openbao: OpenBaoServer, tmp_path: Path) -> None:
    client = setup_bao(openbao)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if "jwt/" not in client.sys.list_auth_methods()["data"]:
        client.sys.enable_auth_method("jwt")
    client.auth.jwt.configure(
        jwt_validation_pubkeys=[public_pem.decode()], bound_issuer="vaultside-tests"
    )
    client.auth.jwt.create_role(
        "vs-broker", user_claim="sub", bound_audiences=["vaultside"], role_type="jwt",
        token_policies=["vs-reader"], token_ttl="60s", allowed_redirect_uris=[],
    )  # fmt: skip
    now = int(time.time())
    claims = {"iss": "vaultside-tests", "sub": "vaultside", "aud": "vaultside",
              "iat": now, "nbf": now - 5, "exp": now + 300}  # fmt: skip
    (tmp_path / "jwt").write_text(sign_jwt(key, claims))
    value = secrets.token_urlsafe(12)
    client.secrets.kv.v2.create_or_update_secret(path="jwt/app", secret={"pw": value})
    async for broker in make_broker(
        tmp_path, address=openbao.addr, auth_method="jwt", jwt_role="vs-broker",
        jwt_file=tmp_path / "jwt",
    ):  # fmt: skip
        assert (await broker.read("secret", "jwt/app")).data["pw"] == value

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "jwt").write_text(sign_jwt(other, claims))  # signed by a key OpenBao doesn't know
    async for broker in make_broker(
        tmp_path, "forged", address=openbao.addr, auth_method="jwt", jwt_role="vs-broker",
        jwt_file=tmp_path / "jwt",
    ):  # fmt: skip
        with pytest.raises(Exception, match="jwt login"):
            await broker.read("secret", "jwt/app")


async def test_token_renewed_and_relogin_after_revocation_without_failures(
    openbao: OpenBaoServer, tmp_path: Path
) -> None:
    client = setup_bao(openbao)
    client.auth.approle.create_or_update_approle(
        "vs-short", token_policies=["vs-reader"], token_ttl="3s", token_max_ttl="1h"
    )
    (tmp_path / "role_id").write_text(
        client.auth.approle.read_role_id("vs-short")["data"]["role_id"]
    )
    (tmp_path / "secret_id").write_text(
        client.auth.approle.generate_secret_id("vs-short")["data"]["secret_id"]
    )
    client.secrets.kv.v2.create_or_update_secret(path="renew/app", secret={"pw": "x"})
    async for broker in make_broker(
        tmp_path, address=openbao.addr, auth_method="approle", cache_ttl=0,
        role_id_file=tmp_path / "role_id", secret_id_file=tmp_path / "secret_id",
    ):  # fmt: skip
        await broker.read("secret", "renew/app")
        first_accessor = client.auth.token.lookup(broker.auth._token)["data"]["accessor"]  # type: ignore[arg-type]
        await asyncio.sleep(5)  # past the 3 s TTL: only renewal keeps the token alive
        assert broker.auth.renewals >= 2 and broker.auth.logins == 1
        await broker.read("secret", "renew/app")

        client.auth.token.revoke_accessor(first_accessor)
        results = await asyncio.gather(
            *(broker.read("secret", "renew/app") for _ in range(20)), return_exceptions=True
        )
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert broker.auth.logins == 2  # one re-login served all 20 requests


async def test_policy_denial_is_not_mistaken_for_a_bad_token(
    openbao: OpenBaoServer, tmp_path: Path
) -> None:
    client = setup_bao(openbao)
    token = client.auth.token.create(policies=["vs-reader"], ttl="10m")["auth"]["client_token"]
    mount = f"private{secrets.token_hex(3)}"
    client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    client.secrets.kv.v2.create_or_update_secret(path="x", secret={"k": "v"}, mount_point=mount)
    async for broker in make_broker(
        tmp_path, address=openbao.addr, token_file=token_file(tmp_path, token),
        kv_versions={mount: 2},
    ):  # fmt: skip
        with pytest.raises(UpstreamForbiddenError) as err:
            await broker.read(mount, "x")
        assert err.value.status == 502 and token not in err.value.message
        assert broker.auth.logins == 1  # the token is fine: no pointless re-login


async def test_stale_reads_while_openbao_is_down_then_503_then_recovery(
    openbao: OpenBaoServer, tmp_path: Path
) -> None:
    client = setup_bao(openbao)
    value = secrets.token_urlsafe(12)
    client.secrets.kv.v2.create_or_update_secret(path="outage/app", secret={"pw": value})
    async for broker in make_broker(
        tmp_path, address=openbao.addr, token_file=token_file(tmp_path, openbao.root_token),
        cache_ttl=0.5, max_staleness=3, request_timeout=2,
    ):  # fmt: skip
        assert not (await broker.read("secret", "outage/app")).stale
        openbao.stop()
        try:
            await asyncio.sleep(0.7)
            stale = await broker.read("secret", "outage/app")
            assert stale.stale and stale.data["pw"] == value
            await asyncio.sleep(3.2)
            with pytest.raises(UpstreamUnavailableError, match="maximum staleness"):
                await broker.read("secret", "outage/app")
        finally:
            openbao.start()
        # Dev mode forgot everything: re-seed, then the same broker recovers without a restart.
        admin(openbao).secrets.kv.v2.create_or_update_secret(
            path="outage/app", secret={"pw": value}
        )
        await asyncio.sleep(1.1)  # past the retry interval
        fresh = await broker.read("secret", "outage/app")
        assert not fresh.stale and fresh.data["pw"] == value


class PartitionProxy:
    """A TCP proxy to OpenBao that can turn into a black hole (a network partition)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.blackhole = False
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if not self.blackhole:  # in a partition bytes just vanish
                    writer.write(data)
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_partition_timeouts_answer_stale_without_waiting(
    openbao: OpenBaoServer, tmp_path: Path
) -> None:
    client = setup_bao(openbao)
    value = secrets.token_urlsafe(12)
    client.secrets.kv.v2.create_or_update_secret(path="partition/app", secret={"pw": value})
    proxy = PartitionProxy(int(openbao.addr.rsplit(":", 1)[1]))
    port = await proxy.start()
    try:
        async for broker in make_broker(
            tmp_path, address=f"http://127.0.0.1:{port}", cache_ttl=0.3, max_staleness=30,
            token_file=token_file(tmp_path, openbao.root_token), request_timeout=1,
        ):  # fmt: skip
            assert not (await broker.read("secret", "partition/app")).stale
            proxy.blackhole = True
            await asyncio.sleep(0.4)
            started = time.monotonic()
            first = await broker.read("secret", "partition/app")  # waits for the 1 s timeout
            assert first.stale and first.data["pw"] == value
            assert 0.8 < time.monotonic() - started < 3
            for _ in range(10):  # the outage is known now: no caller waits for upstream
                started = time.monotonic()
                assert (await broker.read("secret", "partition/app")).stale
                assert time.monotonic() - started < 0.2
                await asyncio.sleep(0.15)
            proxy.blackhole = False
            deadline = time.monotonic() + 5
            while (await broker.read("secret", "partition/app")).stale:
                assert time.monotonic() < deadline, "did not recover after the partition"
                await asyncio.sleep(0.2)
    finally:
        await proxy.close()


async def test_namespace_is_sent_with_every_call(openbao: OpenBaoServer, tmp_path: Path) -> None:
    client = admin(openbao)
    ns = f"team{secrets.token_hex(3)}"
    client.adapter.post(f"/v1/sys/namespaces/{ns}")
    scoped = hvac.Client(url=openbao.addr, token=openbao.root_token, namespace=ns)
    scoped.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    value = secrets.token_urlsafe(12)
    scoped.secrets.kv.v2.create_or_update_secret(path="ns/app", secret={"pw": value})
    async for broker in make_broker(
        tmp_path, address=openbao.addr, namespace=ns,
        token_file=token_file(tmp_path, openbao.root_token),
    ):  # fmt: skip
        assert (await broker.read("secret", "ns/app")).data["pw"] == value
    async for broker in make_broker(
        tmp_path, "root-ns", address=openbao.addr,
        token_file=token_file(tmp_path, openbao.root_token),
    ):  # fmt: skip
        with pytest.raises(NotFoundError):
            await broker.read("secret", "ns/app")  # not visible outside the namespace
