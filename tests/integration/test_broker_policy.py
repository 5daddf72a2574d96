"""Issue 16: the upstream policy in docs/broker.md is exactly enough for every broker feature.

The HCL between the ``broker-policy`` markers of docs/broker.md is created as a policy in a
REAL OpenBao, a token is minted with only that policy (no ``default``), and a broker using
that token does everything the doc lists: token check and renewal, KV v2 (latest, pinned,
metadata), KV v1, dynamic database credentials (which connect to a REAL PostgreSQL) with
lease renewal, look-up and revocation, and the transit seal. A path outside the policy is
refused, so the token really is that narrow.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import hvac
import pytest

from vaultside.broker.source import Broker
from vaultside.broker.transit import BrokerTransit
from vaultside.clock import SystemClock
from vaultside.config.settings import BrokerSettings
from vaultside.crypto.barrier import Barrier
from vaultside.crypto.transit import TransitSeal
from vaultside.errors import UpstreamError

from .services.openbao import OpenBaoServer
from .services.postgres import PostgresCluster
from .test_broker_database import can_connect, setup_database_engine

pytestmark = [pytest.mark.openbao, pytest.mark.postgres]

DOC = Path(__file__).resolve().parents[2] / "docs" / "broker.md"


def documented_policy() -> str:
    text = DOC.read_text()
    match = re.search(
        r"<!-- broker-policy:start -->\s*```hcl\n(.*?)```\s*<!-- broker-policy:end -->", text, re.S
    )
    assert match, "docs/broker.md lost its broker-policy block"
    return match.group(1)


async def test_the_documented_policy_is_enough_for_every_feature(
    openbao: OpenBaoServer, postgres: PostgresCluster, barrier: Barrier, tmp_path: Path
) -> None:
    root = hvac.Client(url=openbao.addr, token=openbao.root_token)
    mounts = root.sys.list_mounted_secrets_engines()["data"]
    if "kv1/" not in mounts:
        root.sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
    if "transit/" not in mounts:
        root.sys.enable_secrets_engine("transit")
    root.secrets.transit.create_key(name="vaultside")
    setup_database_engine(openbao, postgres)
    v1, v2 = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    root.secrets.kv.v2.create_or_update_secret(path="app/pol", secret={"password": v1})
    root.secrets.kv.v2.create_or_update_secret(path="app/pol", secret={"password": v2})
    root.secrets.kv.v2.create_or_update_secret(path="other/pol", secret={"password": "x"})
    root.secrets.kv.v1.create_or_update_secret(
        path="app/pol", secret={"key": v1}, mount_point="kv1"
    )

    root.sys.create_or_update_policy(name="vaultside-broker-doc", policy=documented_policy())
    token = root.auth.token.create(
        policies=["vaultside-broker-doc"], no_default_policy=True, ttl="1h", renewable=True
    )["auth"]["client_token"]
    assert root.auth.token.lookup(token)["data"]["policies"] == ["vaultside-broker-doc"]
    (tmp_path / "token").write_text(token)
    settings = BrokerSettings(address=openbao.addr, token_file=tmp_path / "token")
    broker = Broker("doc", settings, barrier, SystemClock())
    await broker.start()
    try:
        await broker.auth.ensure()  # lookup-self
        await broker.auth.renew_once()  # renew-self
        assert broker.auth.renewals == 1

        latest = await broker.read("secret", "app/pol")
        assert (latest.kind, latest.version, latest.data) == ("kv2", "2", {"password": v2})
        pinned = await broker.read("secret", "app/pol", 1)
        assert pinned.data == {"password": v1}
        meta = await broker.read_metadata("secret", "app/pol")
        assert meta["current_version"] == 2
        kv1 = await broker.read("kv1", "app/pol")
        assert (kv1.kind, kv1.data) == ("kv1", {"key": v1})

        creds = await broker.read("database", "creds/app")
        assert creds.kind == "dynamic" and creds.lease_id
        assert await can_connect(postgres, creds.data)
        assert (await broker.lookup(creds.lease_id) or 0) > 0  # sys/leases/lookup
        granted, _ = await broker.renew(creds.lease_id, 4)  # sys/leases/renew
        assert granted > 0
        await broker.leases.revoke("database/creds/app")  # sys/leases/revoke
        assert not await can_connect(postgres, creds.data)
        assert await broker.lookup(creds.lease_id) is None

        seal = TransitSeal(
            BrokerTransit(broker.client, broker.auth, mount="transit", key="vaultside"),
            wrapped_key_file=tmp_path / "root.wrapped",
        )
        await seal.init()  # transit encrypt
        assert len(await seal.root_key()) == 32  # transit decrypt

        with pytest.raises(UpstreamError):  # the token is no wider than the policy
            await broker.read("secret", "other/pol")
    finally:
        await broker.close()
