"""Vault habits against a LIVE ``vaultside serve``: health HEAD and codes, ``X-Vault-Token``."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from .services.vaultside_server import VaultsideServerFactory


def status(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_health_and_token_headers_as_vault_tooling_uses_them(
    vaultside_server: VaultsideServerFactory,
) -> None:
    server = vaultside_server()
    health = f"{server.addr}/v1/sys/health"
    assert status(health, "HEAD") == 200
    assert status(health + "?activecode=204&standbyok=true") == 204
    assert status(health + "?sealedcode=abc") == 400
    lookup = f"{server.addr}/v1/auth/token/lookup-self"
    assert status(lookup, headers={"X-Vault-Token": server.root_token}) == 200
    both = {"X-Vault-Token": server.root_token, "Authorization": "Bearer vs.other"}
    assert status(lookup, headers=both) == 400
    req = urllib.request.Request(lookup, headers={"X-Vault-Token": server.root_token})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert "root" in json.loads(resp.read())["data"]["policies"]
