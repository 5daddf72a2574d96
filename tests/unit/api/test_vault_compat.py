"""Vault habits that cost nothing: ``/v1/sys/health`` codes and HEAD, ``X-Vault-Token``."""

from __future__ import annotations

import pytest

from vaultside.api.state import SEAL_STATE

from .conftest import Api, ApiFactory


async def test_health_answers_head_without_a_body(api: Api) -> None:
    resp = await api.client.head("/v1/sys/health")
    assert resp.status == 200
    assert await resp.read() == b""


async def test_uninitialized_is_501_and_uninitcode_overrides(make_api: ApiFactory) -> None:
    api: Api = await make_api(key=False)
    resp = await api.client.get("/v1/sys/health")
    assert resp.status == 501
    body = await resp.json()
    assert body["initialized"] is False and body["sealed"] is True
    assert (await api.client.get("/v1/sys/health?uninitcode=200")).status == 200
    assert (await api.client.head("/v1/sys/health")).status == 501


async def test_sealedcode_overrides_while_sealed(api: Api) -> None:
    app = api.client.app
    assert app is not None
    app[SEAL_STATE].sealed = True
    assert (await api.client.get("/v1/sys/health")).status == 503
    assert (await api.client.get("/v1/sys/health?sealedcode=200")).status == 200
    assert (await api.client.head("/v1/sys/health?sealedcode=299")).status == 299
    app[SEAL_STATE].sealed = False


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("activecode=204", 204),
        ("standbyok=true", 200),
        ("standbyok", 200),
        ("standbyok=false&standbycode=429", 200),  # every vaultside server is active
        ("sealedcode=200", 200),  # not sealed: ignored
        ("perfstandbyok=true", 200),
    ],
)
async def test_overrides_when_active(api: Api, query: str, status: int) -> None:
    assert (await api.client.get(f"/v1/sys/health?{query}")).status == status


@pytest.mark.parametrize(
    "query",
    [
        "sealedcode=abc",
        "uninitcode=99",
        "activecode=600",
        "standbycode=-1",
        "activecode=",
        "standbyok=maybe",
    ],
)
async def test_bad_override_values_are_400(api: Api, query: str) -> None:
    resp = await api.client.get(f"/v1/sys/health?{query}")
    assert resp.status == 400
    assert (await resp.json())["errors"]


async def test_x_vault_token_header_is_accepted(api: Api) -> None:
    resp = await api.client.get("/v1/auth/token/lookup-self", headers={"X-Vault-Token": api.root})
    assert resp.status == 200


@pytest.mark.parametrize("second", [{"X-Vault-Token": "same"}, {"X-Vaultside-Token": "same"}])
async def test_token_headers_that_agree_are_accepted(api: Api, second: dict[str, str]) -> None:
    headers = {**api.auth(), **{k: api.root for k in second}}
    resp = await api.client.get("/v1/auth/token/lookup-self", headers=headers)
    assert resp.status == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Vault-Token": "other"},
        {"X-Vaultside-Token": "other"},
    ],
)
async def test_token_headers_that_disagree_are_refused(api: Api, headers: dict[str, str]) -> None:
    other = await api.token("default")
    mixed = {**api.auth(), **{k: other for k in headers}}
    resp = await api.client.get("/v1/auth/token/lookup-self", headers=mixed)
    assert resp.status == 400
    assert "disagree" in (await resp.json())["errors"][0]
    both = {"X-Vault-Token": api.root, "X-Vaultside-Token": other}
    assert (await api.client.get("/v1/auth/token/lookup-self", headers=both)).status == 400


async def test_repeated_token_headers_must_agree(api: Api) -> None:
    from multidict import CIMultiDict

    other = await api.token("default")
    headers = CIMultiDict([("X-Vault-Token", api.root), ("X-Vault-Token", other)])
    resp = await api.client.get("/v1/auth/token/lookup-self", headers=headers)
    assert resp.status == 400
    same = CIMultiDict([("X-Vault-Token", api.root), ("X-Vault-Token", api.root)])
    assert (await api.client.get("/v1/auth/token/lookup-self", headers=same)).status == 200
