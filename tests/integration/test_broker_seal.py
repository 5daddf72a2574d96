"""The vault-transit seal against a REAL OpenBao whose transit key survives restarts.

Dev mode forgets its transit key on restart, so this module runs its own ``bao server`` with
raft storage (OpenBao 2.7 has no ``file`` storage), initializes and unseals it itself (one
key share), and restarts it in place.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import pytest
from aiohttp.test_utils import TestClient, TestServer

from vaultside.api.app import create_app
from vaultside.broker.source import Broker
from vaultside.broker.transit import BrokerTransit
from vaultside.clock import SystemClock
from vaultside.config.settings import BrokerSettings, Settings
from vaultside.crypto.barrier import Barrier
from vaultside.crypto.transit import TransitSeal
from vaultside.crypto.unseal import unseal_until_ready
from vaultside.errors import SealedError
from vaultside.services import Services
from vaultside.storage.sqlite import SqliteStorage
from vaultside.wiring.server import build_services

from .services.openbao import find_bao
from .services.process import (
    ServiceUnavailable,
    free_port,
    remove_tree,
    short_tempdir,
    spawn,
    terminate,
    wait_until,
)

pytestmark = pytest.mark.openbao


@dataclass
class PersistentBao:
    root: Path
    port: int
    unseal_key: str = ""
    root_token: str = ""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _up(self) -> bool:
        try:
            hvac.Client(url=self.addr, timeout=2).sys.is_initialized()
        except Exception:
            return False
        return True

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
        env["HOME"] = str(self.root)
        self.proc = spawn(
            [str(find_bao()), "server", f"-config={self.root / 'bao.hcl'}"],
            self.root / "bao.log",
            env=env,
            cwd=self.root,
        )
        wait_until(
            self._up, timeout=30, what="OpenBao", proc=self.proc, log_path=self.root / "bao.log"
        )
        client = hvac.Client(url=self.addr)
        if not client.sys.is_initialized():
            init = client.sys.initialize(secret_shares=1, secret_threshold=1)
            self.unseal_key, self.root_token = init["keys_base64"][0], init["root_token"]
        client.sys.submit_unseal_key(self.unseal_key)
        wait_until(self._active, timeout=30, what="OpenBao leader", proc=self.proc,
                   log_path=self.root / "bao.log")  # fmt: skip

    def _active(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.addr}/v1/sys/health", timeout=2) as resp:
                return resp.status == 200  # initialized, unsealed and active
        except OSError:
            return False

    def stop(self) -> None:
        terminate(self.proc, grace=15)


@pytest.fixture
def persistent_bao() -> Iterator[PersistentBao]:
    root = short_tempdir("pbao")
    bao = PersistentBao(root, free_port())
    (root / "data").mkdir()
    (root / "bao.hcl").write_text(
        f'storage "raft" {{\n  path = "{root / "data"}"\n  node_id = "n1"\n}}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{bao.port}"\n  tls_disable = true\n}}\n'
        f'api_addr = "{bao.addr}"\ncluster_addr = "http://127.0.0.1:{free_port()}"\n'
    )
    try:
        bao.start()
    except ServiceUnavailable as exc:
        remove_tree(root)
        pytest.skip(f"OpenBao unavailable: {exc}")
    try:
        yield bao
    finally:
        bao.stop()
        remove_tree(root)


def transit_seal(bao: PersistentBao, tmp_path: Path) -> tuple[Broker, TransitSeal]:
    (tmp_path / "token").write_text(bao.root_token)
    settings = BrokerSettings(address=bao.addr, token_file=tmp_path / "token", request_timeout=2)
    broker = Broker("seal", settings, SqliteStorage(tmp_path / "unused.db"), SystemClock())
    seal = TransitSeal(
        BrokerTransit(broker.client, broker.auth, mount="transit", key="vaultside"),
        wrapped_key_file=tmp_path / "root.wrapped",
    )
    return broker, seal


async def test_transit_seal_stays_sealed_until_openbao_is_back(
    persistent_bao: PersistentBao, tmp_path: Path
) -> None:
    admin = hvac.Client(url=persistent_bao.addr, token=persistent_bao.root_token)
    admin.sys.enable_secrets_engine("transit")
    admin.secrets.transit.create_key("vaultside")

    broker, seal = transit_seal(persistent_bao, tmp_path)
    await seal.init()
    wrapped = (tmp_path / "root.wrapped").read_text()
    assert (
        wrapped.startswith("vault:v1:")
        and oct((tmp_path / "root.wrapped").stat().st_mode)[-3:] == "600"
    )
    root = await seal.root_key()
    assert len(root) == 32 and await seal.root_key() == root
    assert root.hex() not in wrapped

    storage = SqliteStorage(tmp_path / "vaultside.db")
    barrier = Barrier(storage, seal)
    await barrier.open()
    await barrier.unseal()
    await barrier.put("kv/test", b"kept across the outage")
    await barrier.seal()
    await broker.close()

    persistent_bao.stop()
    broker2, seal2 = transit_seal(persistent_bao, tmp_path)
    barrier2 = Barrier(storage, seal2)
    with pytest.raises(SealedError, match="transit seal"):
        await barrier2.unseal()
    assert barrier2.sealed
    unsealer = asyncio.create_task(unseal_until_ready(barrier2.unseal, SystemClock(), interval=0.3))
    await asyncio.sleep(1)
    assert not unsealer.done() and barrier2.sealed

    await asyncio.to_thread(persistent_bao.start)  # same data dir: the transit key is back
    await asyncio.wait_for(unsealer, timeout=20)
    assert not barrier2.sealed
    record = await barrier2.get("kv/test")
    assert record is not None and record.value == b"kept across the outage"
    await broker2.close()
    await storage.close()


async def test_server_with_transit_seal_starts_sealed_and_unseals_itself(
    persistent_bao: PersistentBao, tmp_path: Path
) -> None:
    admin = hvac.Client(url=persistent_bao.addr, token=persistent_bao.root_token)
    admin.sys.enable_secrets_engine("transit")
    admin.secrets.transit.create_key("vaultside")
    (tmp_path / "token").write_text(persistent_bao.root_token)
    settings = Settings(
        data_dir=tmp_path / "data",
        seal={"kind": "vault-transit", "transit_broker": "corp", "key_file": "root.wrapped"},
        brokers={"corp": {"address": persistent_bao.addr, "token_file": tmp_path / "token",
                          "request_timeout": 2}},
    )  # type: ignore[arg-type]  # fmt: skip

    async def serve() -> tuple[TestClient[Any, Any], Services]:
        services = build_services(settings)
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(services)))
        await client.start_server()
        return client, services

    async def health(client: TestClient[Any, Any]) -> int:
        async with client.get("/v1/sys/health") as resp:
            return resp.status

    client, services = await serve()
    assert await health(client) == 200  # first start: the wrapped root key was created
    root, _ = await services.tokens.create_root()
    put = await client.put(
        "/v1/secrets/app/db",
        json={"data": {"pw": "kept"}},
        headers={"Authorization": f"Bearer {root}"},
    )
    assert put.status in (200, 204), await put.text()
    await client.close()

    persistent_bao.stop()
    client, services = await serve()
    try:
        for _ in range(3):
            assert await health(client) == 503
            await asyncio.sleep(0.5)
        async with client.get("/v1/sys/seal-status") as resp:
            assert "transit seal" in await resp.text()
        await asyncio.to_thread(persistent_bao.start)
        for _ in range(80):
            if await health(client) == 200:
                break
            await asyncio.sleep(0.25)
        assert await health(client) == 200
        root, _ = await services.tokens.create_root()
        async with client.get(
            "/v1/secrets/app/db", headers={"Authorization": f"Bearer {root}"}
        ) as resp:
            assert resp.status == 200 and (await resp.json())["data"] == {"pw": "kept"}
    finally:
        await client.close()
