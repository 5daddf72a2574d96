"""System routes, metrics, key rotation and /v1/resolve."""

from __future__ import annotations

import asyncio
import secrets as rnd

from vaultside.api.state import BACKGROUND

from .conftest import Api


async def test_health_and_seal_status(api: Api) -> None:
    resp = await api.client.get("/v1/sys/health")
    assert resp.status == 200
    body = await resp.json()
    assert body["sealed"] is False and body["initialized"] is True and body["version"]
    resp = await api.client.get("/v1/sys/seal-status")
    status = await resp.json()
    assert status["sealed"] is False and status["seal_type"] == "file"


async def test_rotate_key_needs_sudo_and_rewraps(api: Api) -> None:
    value = "rot-" + rnd.token_hex(6)
    resp = await api.client.put("/v1/secrets/r/a", json={"data": {"k": value}}, headers=api.auth())
    assert resp.status == 200
    plain = await api.token("default")
    assert (await api.client.post("/v1/sys/rotate-key", headers=api.auth(plain))).status == 403
    assert (await api.client.get("/v1/sys/key-status", headers=api.auth(plain))).status == 403

    before = await (await api.client.get("/v1/sys/key-status", headers=api.auth())).json()
    resp = await api.client.post("/v1/sys/rotate-key", headers=api.auth())
    assert resp.status == 200
    term = (await resp.json())["term"]
    assert term == before["active_term"] + 1
    # The rewrap runs as a background task of the app: wait for it, no polling.
    await asyncio.gather(*api.client.app[BACKGROUND].tasks)  # type: ignore[index]
    status = await (await api.client.get("/v1/sys/key-status", headers=api.auth())).json()
    assert status["active_term"] == term
    assert status["rewrap"]["done"] is True  # type: ignore[index]
    resp = await api.client.get("/v1/secrets/r/a", headers=api.auth())
    assert (await resp.json())["data"] == {"k": value}


async def test_metrics_use_route_templates_not_paths(api: Api) -> None:
    secret_name = "name" + rnd.token_hex(4)
    await api.client.get(f"/v1/secrets/{secret_name}", headers=api.auth())
    text = await (await api.client.get("/metrics")).text()
    assert 'route="/v1/secrets/{path}"' in text
    assert 'status="404"' in text
    assert "vaultside_http_request_duration_seconds_bucket" in text
    assert secret_name not in text
    assert api.root not in text
    for method in ("PROPFIND", "MKCOL", "LOCK"):
        resp = await api.client.request(method, "/v1/secrets/x", headers=api.auth())
        assert resp.status == 405
    text = await (await api.client.get("/metrics")).text()
    assert "PROPFIND" not in text and 'method="other"' in text


async def test_resolve_kv_refs(api: Api) -> None:
    value = "res-" + rnd.token_hex(6)
    await api.client.put(
        "/v1/secrets/app/db", json={"data": {"password": value}}, headers=api.auth()
    )
    resp = await api.client.post(
        "/v1/resolve",
        json={"refs": ["kv:app/db#password", "kv:app/db#password@1"]},
        headers=api.auth(),
    )
    assert resp.status == 200, await resp.text()
    values = (await resp.json())["values"]
    assert values["kv:app/db#password"] == {
        "value": value,
        "version": "1",
        "stale": False,
        "lease_id": None,
    }
    assert values["kv:app/db#password@1"]["value"] == value


async def test_resolve_errors(api: Api) -> None:
    h = api.auth()
    await api.client.put(
        "/v1/secrets/app/db", json={"data": {"password": "p-" + rnd.token_hex(4)}}, headers=h
    )
    resp = await api.client.post("/v1/resolve", json={"refs": ["nonsense"]}, headers=h)
    assert resp.status == 400
    assert "expected" in (await resp.json())["errors"][0]
    resp = await api.client.post("/v1/resolve", json={"refs": []}, headers=h)
    assert resp.status == 400
    resp = await api.client.post("/v1/resolve", json={"refs": ["kv:app/db#nofield"]}, headers=h)
    assert resp.status == 400
    resp = await api.client.post("/v1/resolve", json={"refs": ["kv:app/absent#f"]}, headers=h)
    assert resp.status == 404
    resp = await api.client.post(
        "/v1/resolve", json={"refs": ["vault:corp/secret/app#k"]}, headers=h
    )
    assert resp.status == 400
    await api.policy("db-only", [{"path": "secrets/app/db", "capabilities": ["read"]}])
    limited = api.auth(await api.token("db-only"))
    resp = await api.client.post(
        "/v1/resolve", json={"refs": ["kv:app/db#password", "kv:other/x#f"]}, headers=limited
    )
    assert resp.status == 403
    resp = await api.client.post(
        "/v1/resolve", json={"refs": ["kv:app/db#password"]}, headers=limited
    )
    assert resp.status == 200
