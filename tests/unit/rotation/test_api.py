"""The rotation routes over a real app (temp SQLite stack): policy CRUD, 400s, rotate, status."""

from __future__ import annotations

from typing import Any

from tests.unit.api.conftest import Api, ApiFactory, make_api  # noqa: F401

POLICY: dict[str, Any] = {
    "every": "1h",
    "generator": {"kind": "password", "length": 16},
    "target": {"kind": "kv"},
}


async def test_policy_crud_rotate_status_history(make_api: ApiFactory) -> None:  # noqa: F811
    api: Api = await make_api()
    c, h = api.client, api.auth()
    resp = await c.put("/v1/secrets/app/db", json={"data": {"password": "old"}}, headers=h)
    assert resp.status == 200, await resp.text()
    resp = await c.put("/v1/rotation/policies/app/db", json=POLICY, headers=h)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["policy"]["every"] == 3600
    resp = await c.get("/v1/rotation/policies", headers=h)
    assert (await resp.json())["keys"] == ["app/db"]
    resp = await c.post("/v1/rotation/rotate/app/db", headers=h)
    run = (await resp.json())["run"]
    assert resp.status == 200 and run["result"] == "ok" and run["version"] == 2
    resp = await c.post(
        "/v1/consumers",
        json={"consumer": "sidecar-1", "kind": "sidecar", "holdings": {"app/db": 1}},
        headers=h,
    )
    assert resp.status == 204, await resp.text()
    resp = await c.get("/v1/rotation/status/app/db", headers=h)
    status = await resp.json()
    assert status["state"]["version"] == 2 and status["state"]["next_run"].endswith("Z")
    assert status["consumers"][0]["version"] == 1 and status["consumers"][0]["current"] is False
    assert status["authority"]["policies"] == ["root"]
    assert status["authority"]["granted_at"].endswith("Z") and status["authority"]["accessor"]
    resp = await c.get("/v1/rotation/history/app/db", headers=h)
    assert [r["result"] for r in (await resp.json())["runs"]] == ["ok"]
    body = await (await c.get("/v1/secrets/app/db", headers=h)).json()
    assert body["data"]["password"] != "old"
    assert (await c.delete("/v1/rotation/policies/app/db", headers=h)).status == 204
    assert (await c.get("/v1/rotation/policies/app/db", headers=h)).status == 404
    metrics = await (await c.get("/metrics")).text()
    assert 'vaultside_rotations_total{result="ok",target="kv"} 1.0' in metrics


async def test_bad_policies_are_400_naming_the_field(make_api: ApiFactory) -> None:  # noqa: F811
    api: Api = await make_api()
    cases = [
        ({**POLICY, "every": None, "cron": "0 25 * * *"}, "cron"),
        ({**POLICY, "target": {"kind": "smtp"}}, "target"),
        (
            {
                **POLICY,
                "generator": {"kind": "password", "classes": ["digit"], "exclude": "0123456789"},
            },
            "generator.password",
        ),
        (
            {**POLICY, "target": {"kind": "vault-kv", "broker": "corp", "mount": "s", "path": "p"}},
            "target.broker",
        ),
    ]
    for doc, field in cases:
        resp = await api.client.put("/v1/rotation/policies/x", json=doc, headers=api.auth())
        assert resp.status == 400
        errors = (await resp.json())["errors"]
        assert any(e.startswith(field) for e in errors), errors


async def test_rotate_needs_the_rotate_capability(make_api: ApiFactory) -> None:  # noqa: F811
    api: Api = await make_api()
    await api.client.put("/v1/rotation/policies/app/db", json=POLICY, headers=api.auth())
    await api.policy("reader", [{"path": "rotation/*", "capabilities": ["read"]}])
    token = await api.token("reader")
    resp = await api.client.post("/v1/rotation/rotate/app/db", headers=api.auth(token))
    assert resp.status == 403
    resp = await api.client.get("/v1/rotation/status/app/db", headers=api.auth(token))
    assert resp.status == 200
