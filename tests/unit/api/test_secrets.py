"""The /v1/secrets routes: every status path of the contract table."""

from __future__ import annotations

import secrets as rnd

from .conftest import Api


def _value() -> str:
    return "v-" + rnd.token_urlsafe(12)


async def _put(api: Api, path: str, data: dict[str, str], **extra: object) -> dict[str, object]:
    resp = await api.client.put(
        f"/v1/secrets/{path}", json={"data": data, **extra}, headers=api.auth()
    )
    assert resp.status == 200, await resp.text()
    body: dict[str, object] = await resp.json()
    return body


async def test_write_read_list_delete_round_trip(api: Api) -> None:
    value = _value()
    body = await _put(api, "app/db", {"password": value})
    assert body["metadata"]["version"] == 1  # type: ignore[index]
    resp = await api.client.get("/v1/secrets/app/db", headers=api.auth())
    assert resp.status == 200
    got = await resp.json()
    assert got["data"] == {"password": value}
    assert got["metadata"]["version"] == 1
    assert resp.headers["ETag"]
    assert resp.headers["X-Request-Id"]

    resp = await api.client.get("/v1/secrets?list=true", headers=api.auth())
    assert (await resp.json())["keys"] == ["app/"]
    resp = await api.client.get("/v1/secrets/app?list=true", headers=api.auth())
    assert (await resp.json())["keys"] == ["db"]

    resp = await api.client.delete("/v1/secrets/app/db", headers=api.auth())
    assert resp.status == 204
    resp = await api.client.get("/v1/secrets/app/db", headers=api.auth())
    assert resp.status == 404
    body2 = await resp.json()
    assert body2["request_id"] == resp.headers["X-Request-Id"]
    assert body2["errors"]


async def test_post_writes_and_versions_increase(api: Api) -> None:
    await _put(api, "svc/a", {"k": _value()})
    resp = await api.client.post(
        "/v1/secrets/svc/a", json={"data": {"k": _value()}}, headers=api.auth()
    )
    assert resp.status == 200
    assert (await resp.json())["metadata"]["version"] == 2
    resp = await api.client.get("/v1/secrets/svc/a?version=1", headers=api.auth())
    assert (await resp.json())["metadata"]["version"] == 1


async def test_etag_if_none_match_gives_304_until_changed(api: Api) -> None:
    await _put(api, "poll/me", {"k": _value()})
    resp = await api.client.get("/v1/secrets/poll/me", headers=api.auth())
    etag = resp.headers["ETag"]
    resp = await api.client.get(
        "/v1/secrets/poll/me", headers={**api.auth(), "If-None-Match": etag}
    )
    assert resp.status == 304
    assert resp.headers["ETag"] == etag
    assert resp.headers["X-Request-Id"]
    assert await resp.read() == b""
    for header in (f"W/{etag}", f'"nope", {etag}', "*"):
        resp = await api.client.get(
            "/v1/secrets/poll/me", headers={**api.auth(), "If-None-Match": header}
        )
        assert resp.status == 304, header
    resp = await api.client.get(
        "/v1/secrets/poll/me", headers={**api.auth(), "If-None-Match": '"x"'}
    )
    assert resp.status == 200
    await _put(api, "poll/me", {"k": _value()})
    resp = await api.client.get(
        "/v1/secrets/poll/me", headers={**api.auth(), "If-None-Match": etag}
    )
    assert resp.status == 200
    assert resp.headers["ETag"] != etag


async def test_etag_follows_the_served_version(api: Api) -> None:
    h = api.auth()
    await _put(api, "tag/a", {"k": _value()})
    etag = (await api.client.get("/v1/secrets/tag/a", headers=h)).headers["ETag"]
    cond = {**h, "If-None-Match": etag}
    # Metadata-only changes keep the body, so they keep the tag.
    resp = await api.client.put("/v1/secrets/tag/a:metadata", json={"max_versions": 3}, headers=h)
    assert resp.status == 200
    assert (await api.client.get("/v1/secrets/tag/a", headers=cond)).status == 304
    # A pinned read of the same version has the same body and tag.
    assert (await api.client.get("/v1/secrets/tag/a?version=1", headers=cond)).status == 304
    # Deleted: a poll learns it (404), never 304.
    assert (await api.client.delete("/v1/secrets/tag/a", headers=h)).status == 204
    assert (await api.client.get("/v1/secrets/tag/a", headers=cond)).status == 404
    # Re-created from scratch: version 1 again, but a different tag.
    assert (await api.client.delete("/v1/secrets/tag/a:metadata", headers=h)).status == 204
    await api.clock.advance(1)
    await _put(api, "tag/a", {"k": _value()})
    resp = await api.client.get("/v1/secrets/tag/a", headers=cond)
    assert resp.status == 200
    assert (await resp.json())["metadata"]["version"] == 1
    assert resp.headers["ETag"] != etag


async def test_cas_mismatch_is_409_and_nothing_written(api: Api) -> None:
    await _put(api, "cas/x", {"k": "one-" + _value()})
    resp = await api.client.put(
        "/v1/secrets/cas/x", json={"data": {"k": _value()}, "cas": 5}, headers=api.auth()
    )
    assert resp.status == 409
    resp = await api.client.get("/v1/secrets/cas/x", headers=api.auth())
    assert (await resp.json())["metadata"]["version"] == 1


async def test_bad_input_is_400_naming_the_problem(api: Api) -> None:
    h = api.auth()
    cases = [
        ({"data": {"k": 1}}, "data.k"),
        ({"data": {"k": "v"}, "colour": "red"}, "colour"),
        ({"data": "nope"}, "data"),
        ({}, "data"),
        ({"data": {"k": "v"}, "cas": "1"}, "cas"),
        ({"data": {"k": "v"}, "type": "banana"}, "type"),
    ]
    for body, named in cases:
        resp = await api.client.put("/v1/secrets/ok/path", json=body, headers=h)
        assert resp.status == 400, body
        text = " ".join((await resp.json())["errors"])
        assert named in text, (body, text)
    resp = await api.client.put("/v1/secrets/ok/path", data=b"{not json", headers=h)
    assert resp.status == 400
    assert "not valid JSON" in (await resp.json())["errors"][0]
    resp = await api.client.put("/v1/secrets/ok/path", data=b"[1]", headers=h)
    assert resp.status == 400
    resp = await api.client.put("/v1/secrets/ok/path", data=b"[" * 200_000, headers=h)
    assert resp.status == 400
    resp = await api.client.put("/v1/secrets/ok/path", data=b"\xff\xfe", headers=h)
    assert resp.status == 400
    # nothing half written
    resp = await api.client.get("/v1/secrets/ok/path", headers=h)
    assert resp.status == 404


async def test_invalid_paths_and_params_are_400(api: Api) -> None:
    h = api.auth()
    for path, named in (
        ("a%20b", "characters outside"),
        ("a//b", "empty segment"),
        ("x" * 200, "longer than 128"),
        ("%00", "control character"),
    ):
        resp = await api.client.get(f"/v1/secrets/{path}", headers=h)
        assert resp.status == 400, path
        assert named in (await resp.json())["errors"][0]
    # Dot segments are normalised by the URL layer before routing and authorization.
    resp = await api.client.get("/v1/secrets/a/./b", headers=h)
    assert resp.status == 404
    resp = await api.client.get("/v1/secrets/a?version=abc", headers=h)
    assert resp.status == 400
    assert "version" in (await resp.json())["errors"][0]
    resp = await api.client.get("/v1/secrets/a?bogus=1", headers=h)
    assert resp.status == 400
    assert "bogus" in (await resp.json())["errors"][0]
    resp = await api.client.get("/v1/secrets", headers=h)
    assert resp.status == 400


async def test_actions_versions_metadata_destroy_undelete(api: Api) -> None:
    h = api.auth()
    await _put(api, "act/s", {"k": _value()})
    await _put(api, "act/s", {"k": _value()})
    resp = await api.client.get("/v1/secrets/act/s:versions", headers=h)
    assert [v["version"] for v in (await resp.json())["versions"]] == [1, 2]

    resp = await api.client.post("/v1/secrets/act/s:delete", json={"versions": [2]}, headers=h)
    assert resp.status == 204
    resp = await api.client.get("/v1/secrets/act/s?version=2", headers=h)
    assert resp.status == 404
    resp = await api.client.post("/v1/secrets/act/s:undelete", json={"versions": [2]}, headers=h)
    assert resp.status == 204
    resp = await api.client.get("/v1/secrets/act/s?version=2", headers=h)
    assert resp.status == 200
    resp = await api.client.post("/v1/secrets/act/s:destroy", json={"versions": [1]}, headers=h)
    assert resp.status == 204
    resp = await api.client.get("/v1/secrets/act/s?version=1", headers=h)
    assert resp.status == 404

    resp = await api.client.put(
        "/v1/secrets/act/s:metadata",
        json={"max_versions": 5, "custom_metadata": {"owner": "team-a"}},
        headers=h,
    )
    assert resp.status == 200, await resp.text()
    meta = await resp.json()
    assert meta["max_versions"] == 5
    assert meta["custom_metadata"] == {"owner": "team-a"}
    resp = await api.client.get("/v1/secrets/act/s:metadata", headers=h)
    assert (await resp.json())["current_version"] == 2

    resp = await api.client.post("/v1/secrets/act/s:delete", json={"versions": []}, headers=h)
    assert resp.status == 400
    resp = await api.client.post("/v1/secrets/act/s:frobnicate", json={}, headers=h)
    assert resp.status == 404
    resp = await api.client.delete("/v1/secrets/act/s:metadata", headers=h)
    assert resp.status == 204
    resp = await api.client.get("/v1/secrets/act/s:metadata", headers=h)
    assert resp.status == 404


async def test_policy_scoped_token_403_before_404(api: Api) -> None:
    await api.policy("app-ro", [{"path": "secrets/app/*", "capabilities": ["read", "list"]}])
    token = await api.token("app-ro")
    h = api.auth(token)
    await _put(api, "app/one", {"k": _value()})
    await _put(api, "other/one", {"k": _value()})
    assert (await api.client.get("/v1/secrets/app/one", headers=h)).status == 200
    assert (await api.client.get("/v1/secrets/app/absent", headers=h)).status == 404
    # Denied: same answer whether the secret exists or not.
    assert (await api.client.get("/v1/secrets/other/one", headers=h)).status == 403
    assert (await api.client.get("/v1/secrets/other/absent", headers=h)).status == 403
    assert (
        await api.client.put("/v1/secrets/app/one", json={"data": {"k": "x"}}, headers=h)
    ).status == 403
    assert (await api.client.delete("/v1/secrets/app/one", headers=h)).status == 403
    resp = await api.client.get("/v1/secrets/app?list=true", headers=h)
    assert resp.status == 200
    assert (await api.client.get("/v1/secrets?list=true", headers=h)).status == 403


async def test_create_vs_update_capability(api: Api) -> None:
    await api.policy("creator", [{"path": "secrets/new/*", "capabilities": ["create"]}])
    h = api.auth(await api.token("creator"))
    resp = await api.client.put("/v1/secrets/new/a", json={"data": {"k": _value()}}, headers=h)
    assert resp.status == 200
    resp = await api.client.put("/v1/secrets/new/a", json={"data": {"k": _value()}}, headers=h)
    assert resp.status == 403


async def test_oversized_body_and_value(make_api) -> None:  # type: ignore[no-untyped-def]
    api: Api = await make_api(server={"max_body_bytes": 2048}, kv={"max_value_bytes": 100})
    resp = await api.client.put(
        "/v1/secrets/big/a", json={"data": {"k": "x" * 4000}}, headers=api.auth()
    )
    assert resp.status == 413
    assert resp.headers["X-Request-Id"]
    assert "2048" in (await resp.json())["errors"][0]
    resp = await api.client.put(
        "/v1/secrets/big/a", json={"data": {"k": "x" * 500}}, headers=api.auth()
    )
    assert resp.status == 413
