"""Broker TLS settings against a REAL OpenBao dev server in ``-dev-tls`` mode (generated CA)."""

from __future__ import annotations

import os
import secrets
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest

from vaultside.errors import UpstreamError, UpstreamUnavailableError

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
from .test_broker_vault import make_broker

pytestmark = pytest.mark.openbao


class TlsBao:
    def __init__(self) -> None:
        self.root = short_tempdir("tlsbao")
        self.port = free_port()
        self.token = f"root-{secrets.token_hex(8)}"
        self.addr = f"https://127.0.0.1:{self.port}"
        self.ca = self.root / "vault-ca.pem"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
        env["HOME"] = str(self.root)
        self.proc = spawn(
            [str(find_bao()), "server", "-dev", "-dev-tls", f"-dev-tls-cert-dir={self.root}",
             f"-dev-root-token-id={self.token}", f"-dev-listen-address=127.0.0.1:{self.port}"],
            self.root / "bao.log", env=env, cwd=self.root,
        )  # fmt: skip
        wait_until(self._up, timeout=30, what="OpenBao (TLS)", proc=self.proc,
                   log_path=self.root / "bao.log")  # fmt: skip

    def _up(self) -> bool:
        if not self.ca.exists():
            return False
        ctx = ssl.create_default_context(cafile=str(self.ca))
        try:
            with urllib.request.urlopen(f"{self.addr}/v1/sys/health", timeout=2, context=ctx) as r:
                return r.status == 200
        except OSError:
            return False

    def close(self) -> None:
        terminate(self.proc, grace=15)
        remove_tree(self.root)


@pytest.fixture
def tls_bao() -> Iterator[TlsBao]:
    try:
        bao = TlsBao()
    except ServiceUnavailable as exc:
        pytest.skip(f"OpenBao (TLS) unavailable: {exc}")
    try:
        yield bao
    finally:
        bao.close()


async def test_ca_file_verifies_and_a_wrong_ca_is_a_config_error(
    tls_bao: TlsBao, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The environment's own CA bundle must not decide the outcome.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    value = secrets.token_urlsafe(12)
    admin = hvac.Client(url=tls_bao.addr, token=tls_bao.token, verify=str(tls_bao.ca))
    admin.secrets.kv.v2.create_or_update_secret(path="tls/app", secret={"pw": value})
    (tmp_path / "token").write_text(tls_bao.token)
    common = {"address": tls_bao.addr, "token_file": tmp_path / "token"}

    async for broker in make_broker(tmp_path, "ca", ca_file=tls_bao.ca, **common):
        assert (await broker.read("secret", "tls/app")).data["pw"] == value

    async for broker in make_broker(tmp_path, "noca", **common):
        with pytest.raises(UpstreamError, match="TLS handshake") as err:
            await broker.read("secret", "tls/app")
        assert not isinstance(err.value, UpstreamUnavailableError)

    async for broker in make_broker(tmp_path, "noverify", tls_verify=False, **common):
        assert (await broker.read("secret", "tls/app")).data["pw"] == value
