"""Token and policy routes through the API."""

from __future__ import annotations

from .conftest import Api


async def test_create_lookup_renew_revoke(api: Api) -> None:
    h = api.auth()
    resp = await api.client.post(
        "/v1/auth/token/create",
        json={"policies": ["default"], "ttl": "1h", "display_name": "ci", "meta": {"team": "a"}},
        headers=h,
    )
    assert resp.status == 200, await resp.text()
    auth = (await resp.json())["auth"]
    child, accessor = auth["token"], auth["accessor"]
    assert child.startswith("vs.")
    assert auth["ttl"] == 3600
    assert auth["renewable"] is True

    resp = await api.client.get("/v1/auth/token/lookup-self", headers=api.auth(child))
    data = (await resp.json())["data"]
    assert data["accessor"] == accessor
    assert data["display_name"] == "ci"
    assert "token" not in data

    resp = await api.client.post("/v1/auth/token/lookup", json={"accessor": accessor}, headers=h)
    assert (await resp.json())["data"]["meta"] == {"team": "a"}
    resp = await api.client.post("/v1/auth/token/lookup", json={"token": child}, headers=h)
    assert (await resp.json())["data"]["accessor"] == accessor

    await api.clock.advance(600)
    resp = await api.client.post("/v1/auth/token/renew-self", headers=api.auth(child))
    assert resp.status == 200, await resp.text()
    assert "token" not in (await resp.json())["auth"]
    resp = await api.client.post(
        "/v1/auth/token/renew", json={"accessor": accessor, "increment": 60}, headers=h
    )
    assert resp.status == 200

    resp = await api.client.post("/v1/auth/token/revoke-self", headers=api.auth(child))
    assert resp.status == 204
    resp = await api.client.get("/v1/auth/token/lookup-self", headers=api.auth(child))
    assert resp.status == 403


async def test_token_bodies_are_validated(api: Api) -> None:
    h = api.auth()
    for body, named in [
        ({"ttl": "soon"}, "ttl"),
        ({"ttl": -5}, "ttl"),
        ({"policies": "root"}, "policies"),
        ({"max_uses": -1}, "max_uses"),
        ({"nonsense": True}, "nonsense"),
    ]:
        resp = await api.client.post("/v1/auth/token/create", json=body, headers=h)
        assert resp.status == 400, body
        assert named in " ".join((await resp.json())["errors"]), body
    resp = await api.client.post("/v1/auth/token/lookup", json={}, headers=h)
    assert resp.status == 400
    assert "exactly one" in " ".join((await resp.json())["errors"])
    resp = await api.client.post(
        "/v1/auth/token/lookup", json={"accessor": "nonexistentaccessor0000000"}, headers=h
    )
    assert resp.status in (400, 404)
    resp = await api.client.post("/v1/auth/token/lookup", json={"token": "vs.gone"}, headers=h)
    assert resp.status == 404


async def test_child_cannot_escalate_and_needs_create_capability(api: Api) -> None:
    await api.policy("minter", [{"path": "auth/token/create", "capabilities": ["create"]}])
    minter = await api.token("minter")
    resp = await api.client.post(
        "/v1/auth/token/create", json={"policies": ["root"]}, headers=api.auth(minter)
    )
    assert resp.status == 403
    resp = await api.client.post(
        "/v1/auth/token/create", json={"policies": ["minter"]}, headers=api.auth(minter)
    )
    assert resp.status == 200
    plain = await api.token("default")
    resp = await api.client.post("/v1/auth/token/create", json={}, headers=api.auth(plain))
    assert resp.status == 403


async def test_limited_use_token_is_exhausted(api: Api) -> None:
    token = await api.token("default", max_uses=2)
    for _ in range(2):
        resp = await api.client.get("/v1/auth/token/lookup-self", headers=api.auth(token))
        assert resp.status == 200
    resp = await api.client.get("/v1/auth/token/lookup-self", headers=api.auth(token))
    assert resp.status == 403


async def test_policy_crud(api: Api) -> None:
    h = api.auth()
    rules = [{"path": "secrets/app/*", "capabilities": ["read", "list"]}]
    resp = await api.client.put("/v1/sys/policies/app-ro", json={"rules": rules}, headers=h)
    assert resp.status == 204
    resp = await api.client.get("/v1/sys/policies/app-ro", headers=h)
    assert (await resp.json()) == {"name": "app-ro", "rules": rules}
    resp = await api.client.get("/v1/sys/policies", headers=h)
    assert {"app-ro", "root", "default"} <= set((await resp.json())["policies"])
    resp = await api.client.delete("/v1/sys/policies/app-ro", headers=h)
    assert resp.status == 204
    resp = await api.client.get("/v1/sys/policies/app-ro", headers=h)
    assert resp.status == 404


async def test_policy_errors(api: Api) -> None:
    h = api.auth()
    resp = await api.client.put(
        "/v1/sys/policies/bad", json={"rules": [{"path": "x", "capabilities": ["fly"]}]}, headers=h
    )
    assert resp.status == 400
    assert "capabilities[0]" in (await resp.json())["errors"][0]
    resp = await api.client.put("/v1/sys/policies/Bad Name", json={"rules": []}, headers=h)
    assert resp.status == 400
    resp = await api.client.put("/v1/sys/policies/root", json={"rules": []}, headers=h)
    assert resp.status == 400
    plain = await api.token("default")
    resp = await api.client.get("/v1/sys/policies", headers=api.auth(plain))
    assert resp.status == 403
    resp = await api.client.get("/v1/sys/policies/absent", headers=api.auth(plain))
    assert resp.status == 403
