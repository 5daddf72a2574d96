"""Brokered secrets through vaultside's HTTP API (``vaultside serve --dev``) in front of a REAL
OpenBao: vaultside policies govern access, the app never holds a Vault token, bad references
and unknown brokers are 400, and stale-if-error shows in a header until it turns into 503."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import hvac
import pytest

from .services.openbao import OpenBaoServer
from .stack import broker_server

pytestmark = pytest.mark.openbao


def seed(openbao: OpenBaoServer, path: str, data: dict[str, str]) -> None:
    client = hvac.Client(url=openbao.addr, token=openbao.root_token)
    client.secrets.kv.v2.create_or_update_secret(path=path, secret=data)


async def call(
    session: aiohttp.ClientSession, method: str, url: str, token: str, **kw: object
) -> tuple[int, dict[str, object], dict[str, str]]:
    headers = {"Authorization": f"Bearer {token}"}
    async with session.request(method, url, headers=headers, **kw) as resp:  # type: ignore[arg-type]
        body = await resp.json() if resp.content_type == "application/json" else {}
        return resp.status, body, dict(resp.headers)


async def test_brokered_reads_policies_and_bad_refs(
    openbao: OpenBaoServer,
    vaultside_server,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    server = broker_server(
        vaultside_server, openbao.addr, openbao.root_token, tmp_path / "bao-token"
    )
    value = secrets.token_urlsafe(16)
    seed(openbao, "api/app", {"password": value})
    seed(openbao, "api/other", {"password": "not-for-app"})
    root, base = server.root_token, server.addr
    async with aiohttp.ClientSession() as s:
        status, body, _ = await call(s, "GET", f"{base}/v1/broker/corp/secret/api/app", root)
        assert status == 200, body
        assert body["data"] == {"password": value}
        assert body["metadata"] == {"version": "1", "kind": "kv2", "stale": False}

        status, body, _ = await call(
            s, "PUT", f"{base}/v1/sys/policies/app", root,
            json={"rules": [{"path": "broker/corp/secret/api/app", "capabilities": ["read"]}]},
        )  # fmt: skip
        assert status in (200, 204), body
        status, body, _ = await call(
            s, "POST", f"{base}/v1/auth/token/create", root, json={"policies": ["app"]}
        )
        assert status == 200, body
        app_token = body["auth"]["token"]  # type: ignore[index]
        assert (await call(s, "GET", f"{base}/v1/broker/corp/secret/api/app", app_token))[0] == 200
        status, _, _ = await call(s, "GET", f"{base}/v1/broker/corp/secret/api/other", app_token)
        assert status == 403

        status, body, _ = await call(
            s, "POST", f"{base}/v1/resolve", app_token,
            json={"refs": ["vault:corp/secret/api/app#password"]},
        )  # fmt: skip
        assert status == 200, body
        assert body["values"]["vault:corp/secret/api/app#password"]["value"] == value  # type: ignore[index]

        for bad in ("vault:corp/secret#password", "vault:corp/secret/a/../b#x", "vault:corp/x/y"):
            status, body, _ = await call(
                s, "POST", f"{base}/v1/resolve", root, json={"refs": [bad]}
            )
            assert status == 400 and "expected kv:<path>" in str(body["errors"]), body
        status, body, _ = await call(
            s, "POST", f"{base}/v1/resolve", root, json={"refs": ["vault:nope/secret/api/app#p"]}
        )
        assert status == 400 and "unknown broker 'nope'" in str(body["errors"]), body
        status, body, _ = await call(s, "GET", f"{base}/v1/broker/nope/secret/api/app", root)
        assert status == 400 and "unknown broker" in str(body["errors"]), body
        status, body, _ = await call(
            s, "GET", f"{base}/v1/broker/corp/secret/api/app?version=x", root
        )
        assert status == 400, body

    env = {**os.environ, "VAULTSIDE_ADDR": base, "VAULTSIDE_TOKEN": app_token}
    out = subprocess.run(
        [sys.executable, "-m", "vaultside", "broker", "read", "corp/secret/api/app",
         "--field", "password"], env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == value


async def test_stale_header_then_503_then_recovery_through_the_api(
    openbao: OpenBaoServer,
    vaultside_server,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    server = broker_server(
        vaultside_server, openbao.addr, openbao.root_token, tmp_path / "bao-token",
        VAULTSIDE_BROKERS__corp__CACHE_TTL="0.5",
        VAULTSIDE_BROKERS__corp__MAX_STALENESS="3",
        VAULTSIDE_BROKERS__corp__REQUEST_TIMEOUT="2",
    )  # fmt: skip
    value = secrets.token_urlsafe(16)
    seed(openbao, "api/outage", {"password": value})
    url = f"{server.addr}/v1/broker/corp/secret/api/outage"
    async with aiohttp.ClientSession() as s:
        status, body, headers = await call(s, "GET", url, server.root_token)
        assert status == 200 and "X-Vaultside-Stale" not in headers
        openbao.stop()
        try:
            time.sleep(0.7)
            status, body, headers = await call(s, "GET", url, server.root_token)
            assert status == 200 and headers.get("X-Vaultside-Stale") == "true", body
            assert body["data"] == {"password": value} and body["metadata"]["stale"] is True  # type: ignore[index]
            time.sleep(3.2)
            status, body, _ = await call(s, "GET", url, server.root_token)
            assert status == 503 and "maximum staleness" in str(body["errors"]), body
        finally:
            openbao.start()
        seed(openbao, "api/outage", {"password": value})  # dev mode forgot it
        time.sleep(1.1)
        status, body, headers = await call(s, "GET", url, server.root_token)
        assert status == 200 and "X-Vaultside-Stale" not in headers, body
        async with s.get(f"{server.addr}/metrics") as resp:
            metrics = await resp.text()
        assert 'vaultside_broker_stale_reads_total{broker="corp"}' in metrics


async def test_kv1_reads_have_no_version_field(
    openbao: OpenBaoServer,
    vaultside_server,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """KV v1 keeps no versions: the API omits ``metadata.version`` and the CLI prints none."""
    client = hvac.Client(url=openbao.addr, token=openbao.root_token)
    if "kv1/" not in client.sys.list_mounted_secrets_engines()["data"]:
        client.sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
    value = secrets.token_urlsafe(16)
    client.secrets.kv.v1.create_or_update_secret(
        path="api/v1app", secret={"key": value}, mount_point="kv1"
    )
    server = broker_server(
        vaultside_server, openbao.addr, openbao.root_token, tmp_path / "bao-token"
    )
    async with aiohttp.ClientSession() as s:
        url = f"{server.addr}/v1/broker/corp/kv1/api/v1app"
        status, body, _ = await call(s, "GET", url, server.root_token)
    assert status == 200, body
    assert body["data"] == {"key": value}
    assert body["metadata"] == {"kind": "kv1", "stale": False}, body

    env = {**os.environ, "VAULTSIDE_ADDR": server.addr, "VAULTSIDE_TOKEN": server.root_token}
    out = subprocess.run(
        [sys.executable, "-m", "vaultside", "broker", "read", "corp/kv1/api/v1app"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "corp/kv1/api/v1app (kv1)" in out.stdout and "version" not in out.stdout, out.stdout


async def test_broker_token_gone_upstream_says_which_file_to_fix(
    openbao: OpenBaoServer,
    vaultside_server,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """Issue 16: a token-auth broker whose OpenBao token was revoked answers 502 naming its
    token_file and what to do (never the token); ``vaultside_broker_login_ok`` drops to 0 until
    a valid token is written to the file, which the next request picks up."""
    client = hvac.Client(url=openbao.addr, token=openbao.root_token)
    seed(openbao, "api/lost", {"password": secrets.token_urlsafe(16)})
    token = client.auth.token.create(policies=["root"], ttl="1h")["auth"]["client_token"]
    token_file = tmp_path / "broker-token"
    server = broker_server(
        vaultside_server, openbao.addr, token, token_file, VAULTSIDE_BROKERS__corp__CACHE_TTL=0
    )
    url = f"{server.addr}/v1/broker/corp/secret/api/lost"
    async with aiohttp.ClientSession() as s:
        assert (await call(s, "GET", url, server.root_token))[0] == 200
        client.auth.token.revoke(token)  # like a dev-server restart or an expiry
        status, body, _ = await call(s, "GET", url, server.root_token)
        text = str(body["errors"])
        assert status == 502, body
        assert str(token_file) in text and "write a valid token to that file" in text, text
        assert token not in text
        async with s.get(f"{server.addr}/metrics") as resp:
            metrics = await resp.text()
        assert 'vaultside_broker_login_ok{broker="corp"} 0.0' in metrics
        assert 'vaultside_broker_login_failures_total{broker="corp",method="token"}' in metrics

        fresh = client.auth.token.create(policies=["root"], ttl="1h")["auth"]["client_token"]
        token_file.write_text(fresh)
        assert (await call(s, "GET", url, server.root_token))[0] == 200
        async with s.get(f"{server.addr}/metrics") as resp:
            assert 'vaultside_broker_login_ok{broker="corp"} 1.0' in await resp.text()
    assert token not in server.output() and fresh not in server.output()
