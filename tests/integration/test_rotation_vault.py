"""Vault KV rotation against a REAL OpenBao through ``vaultside serve`` and its broker.

The new value lands as a new upstream KV v2 version (the previous stays readable by number),
vaultside's copy matches it, and a brokered read sees it at once. A broker whose token may
only read makes ``set`` fail: the rotation is rolled back and neither side changes.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import hvac
import pytest

from tests.integration.services.openbao import OpenBaoServer
from tests.integration.services.vaultside_server import VaultsideServerFactory
from vaultside.client import VaultsideClient

pytestmark = [pytest.mark.openbao, pytest.mark.timeout(120)]


def policy(broker: str, path: str) -> dict[str, Any]:
    return {
        "every": "1d",
        "generator": {"kind": "token", "prefix": "api_", "length": 32},
        "target": {"kind": "vault-kv", "broker": broker, "mount": "secret", "path": path},
    }


async def test_vault_kv_rotation_and_rollback(
    openbao: OpenBaoServer, vaultside_server: VaultsideServerFactory, tmp_path: Path
) -> None:
    bao = hvac.Client(url=openbao.addr, token=openbao.root_token)
    upstream = f"rotation/{secrets.token_hex(4)}"
    bao.secrets.kv.v2.create_or_update_secret(path=upstream, secret={"token": "seed"})
    bao.sys.create_or_update_policy(
        "rotation-ro", 'path "secret/*" { capabilities = ["read", "list"] }'
    )
    ro_token = bao.auth.token.create(policies=["rotation-ro"], ttl="1h")["auth"]["client_token"]
    files = {}
    for name, token in (("corp", openbao.root_token), ("readonly", ro_token)):
        files[name] = tmp_path / f"{name}-token"
        files[name].write_text(token)
        files[name].chmod(0o600)
    server = vaultside_server(
        VAULTSIDE_BROKERS__corp__ADDRESS=openbao.addr,
        VAULTSIDE_BROKERS__corp__TOKEN_FILE=str(files["corp"]),
        VAULTSIDE_BROKERS__readonly__ADDRESS=openbao.addr,
        VAULTSIDE_BROKERS__readonly__TOKEN_FILE=str(files["readonly"]),
    )
    client = VaultsideClient(server.addr, server.root_token)
    try:
        await client.write_secret("app/api", {"token": "seed"})
        # Prime the broker's cache so a stale cached read would show.
        _, before, _ = await client.request("GET", f"broker/corp/secret/{upstream}")
        await client.request("PUT", "rotation/policies/app/api", body=policy("corp", upstream))
        _, body, _ = await client.request("POST", "rotation/rotate/app/api")
        assert body["run"]["result"] == "ok", body
        local = await client.read_secret("app/api")
        new = local.data["token"]  # type: ignore[union-attr]
        assert new.startswith("api_") and len(new) == 36
        latest = bao.secrets.kv.v2.read_secret_version(path=upstream, raise_on_deleted_version=True)
        assert latest["data"]["data"]["token"] == new
        assert latest["data"]["metadata"]["version"] == 2
        v1 = bao.secrets.kv.v2.read_secret_version(
            path=upstream, version=1, raise_on_deleted_version=True
        )
        assert v1["data"]["data"]["token"] == "seed"  # the previous stays readable upstream
        _, brokered, _ = await client.request("GET", f"broker/corp/secret/{upstream}")
        assert brokered != before and new in str(brokered)

        # A broker that may only read: set fails, nothing changes anywhere.
        other = f"rotation/{secrets.token_hex(4)}"
        bao.secrets.kv.v2.create_or_update_secret(path=other, secret={"token": "seed2"})
        await client.write_secret("app/ro", {"token": "seed2"})
        await client.request("PUT", "rotation/policies/app/ro", body=policy("readonly", other))
        _, body, _ = await client.request("POST", "rotation/rotate/app/ro")
        run = body["run"]
        assert run["result"] == "failed" and run["step"] == "set", run
        assert "forbidden" in run["error"]
        meta = bao.secrets.kv.v2.read_secret_metadata(path=other)
        assert meta["data"]["current_version"] == 1
        assert (await client.read_secret("app/ro")).data == {"token": "seed2"}  # type: ignore[union-attr]
        _, status, _ = await client.request("GET", "rotation/status/app/ro")
        assert status["state"]["failures"] == 1 and status["in_flight"] is None
    finally:
        await client.close()
