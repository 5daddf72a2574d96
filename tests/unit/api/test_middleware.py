"""The pipeline: request ids, auth failures, error boundary, seal gate, audit fail-closed."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets as rnd

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.stores import keyed_settings, new_key_file
from vaultside.api.app import create_app
from vaultside.api.state import BACKGROUND, SEAL_STATE, SERVICES
from vaultside.wiring.server import build_services

from .conftest import Api


async def _errors(resp) -> list[str]:  # type: ignore[no-untyped-def]
    body = await resp.json()
    assert body["request_id"] == resp.headers["X-Request-Id"]
    errors: list[str] = body["errors"]
    return errors


async def test_every_response_has_a_request_id(api: Api) -> None:
    for method, path in [
        ("GET", "/v1/sys/health"),
        ("GET", "/metrics"),
        ("GET", "/v1/openapi.json"),
        ("GET", "/v1/secrets/nope"),
        ("GET", "/v1/no/such/route"),
        ("PATCH", "/v1/secrets/a"),
    ]:
        resp = await api.client.request(method, path, headers=api.auth())
        assert len(resp.headers["X-Request-Id"]) >= 16, path
        assert resp.headers["Server"] == "vaultside"
    ids = set()
    for _ in range(5):
        resp = await api.client.get("/v1/sys/health")
        ids.add(resp.headers["X-Request-Id"])
    assert len(ids) == 5


async def test_unknown_route_404_and_wrong_method_405(api: Api) -> None:
    resp = await api.client.get("/v1/no/such/route", headers=api.auth())
    assert resp.status == 404
    assert "no route" in (await _errors(resp))[0]
    resp = await api.client.patch("/v1/secrets/a", headers=api.auth())
    assert resp.status == 405
    assert "PATCH" in (await _errors(resp))[0]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer vs.wrongwrongwrongwrongwrongwrongwrong12"},
        {"X-Vaultside-Token": "not-a-token"},
    ],
)
async def test_absent_or_wrong_token_is_403(api: Api, headers: dict[str, str]) -> None:
    resp = await api.client.get("/v1/secrets/a", headers=headers)
    assert resp.status == 403
    assert "permission denied" in (await _errors(resp))[0]


async def test_x_vaultside_token_header_is_accepted(api: Api) -> None:
    resp = await api.client.get(
        "/v1/auth/token/lookup-self", headers={"X-Vaultside-Token": api.root}
    )
    assert resp.status == 200


async def test_expired_and_revoked_tokens_are_403(api: Api) -> None:
    short = await api.token("default", ttl=10.0)
    assert (
        await api.client.get("/v1/auth/token/lookup-self", headers=api.auth(short))
    ).status == 200
    await api.clock.advance(11)
    assert (
        await api.client.get("/v1/auth/token/lookup-self", headers=api.auth(short))
    ).status == 403

    victim = await api.token("default")
    resp = await api.client.post(
        "/v1/auth/token/revoke", json={"token": victim}, headers=api.auth()
    )
    assert resp.status == 204
    resp = await api.client.get("/v1/auth/token/lookup-self", headers=api.auth(victim))
    assert resp.status == 403


async def test_repeated_failures_are_throttled_but_never_a_valid_token(api: Api) -> None:
    bad = {"Authorization": "Bearer vs.wrongwrongwrongwrongwrongwrongwrong12"}
    tasks = [asyncio.ensure_future(api.client.get("/v1/secrets/a", headers=bad)) for _ in range(30)]
    for _ in range(1000):  # let the requests reach the server (the fake clock stands still)
        if sum(t.done() for t in tasks) >= 10:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    assert sum(t.done() for t in tasks) == 10  # the burst; the rest are held for their slots
    # A valid token from the same client: answered at once, the clock still standing.
    assert (await api.client.get("/v1/secrets/a", headers=api.auth())).status == 404
    while not all(t.done() for t in tasks):
        await api.clock.advance(1)
        await asyncio.sleep(0.01)
    statuses = [(await t).status for t in tasks]
    # 10 at once + 8 within max_wait, then 429 (after max_wait) for the rest.
    assert statuses.count(403) >= 18 and 429 in statuses and len(statuses) == 30


async def test_internal_error_hides_the_message_and_logs_the_request_id(
    make_api,
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    leaked = "leak-" + rnd.token_hex(8)
    data_dir = (await make_api()).settings.data_dir.parent / "boom"
    data_dir.mkdir()
    app = create_app(build_services(keyed_settings(data_dir)))

    async def boom(request: web.Request) -> web.Response:
        raise ValueError(leaked)

    app.router.add_get("/v1/boom", boom)
    async with TestClient(TestServer(app)) as client:
        root, _ = await app[SERVICES].tokens.create_root()
        with caplog.at_level(logging.ERROR):
            resp = await client.get("/v1/boom", headers={"Authorization": f"Bearer {root}"})
        assert resp.status == 500
        body = await resp.text()
        assert leaked not in body
        assert json.loads(body)["errors"] == ["internal error"]
        rid = resp.headers["X-Request-Id"]
        assert any(getattr(r, "request_id", None) == rid for r in caplog.records)
        assert leaked not in caplog.text


async def test_sealed_answers_503_and_unseals_when_the_key_appears(make_api) -> None:  # type: ignore[no-untyped-def]
    api: Api = await make_api(key=False)
    resp = await api.client.get("/v1/secrets/a", headers={"Authorization": "Bearer x"})
    assert resp.status == 503
    assert "sealed" in (await _errors(resp))[0]
    resp = await api.client.get("/v1/sys/health")
    assert resp.status == 501  # no key file yet: not initialized (Vault's code)
    assert (await resp.json())["sealed"] is True
    resp = await api.client.get("/v1/sys/seal-status")
    assert resp.status == 200
    status = await resp.json()
    assert status["sealed"] is True and status["initialized"] is False
    assert status["reason"]
    assert (await api.client.get("/metrics")).status == 200

    new_key_file(api.settings.resolve(api.settings.seal.key_file))
    state = api.client.app[SEAL_STATE]  # type: ignore[index]
    background = api.client.app[BACKGROUND]  # type: ignore[index]
    (unseal,) = [t for t in background.tasks if t.get_name() == "unseal"]
    while not unseal.done():
        await api.clock.advance(5)  # the retry backoff is capped at 5 s
        await asyncio.wait({unseal}, timeout=0.05)
    assert not state.sealed
    resp = await api.client.get("/v1/sys/health")
    assert resp.status == 200
    root, _ = await api.services.tokens.create_root()
    resp = await api.client.get("/v1/secrets/a", headers={"Authorization": f"Bearer {root}"})
    assert resp.status == 404


async def test_audit_record_written_per_request_without_values(api: Api) -> None:
    value = "audit-" + rnd.token_hex(8)
    resp = await api.client.put(
        "/v1/secrets/aud/x", json={"data": {"k": value}}, headers=api.auth()
    )
    rid = resp.headers["X-Request-Id"]
    resp = await api.client.get("/v1/secrets/aud/x", headers=api.auth())
    rid2 = resp.headers["X-Request-Id"]
    resp = await api.client.get("/v1/secrets/aud/x", headers={})
    rid3 = resp.headers["X-Request-Id"]
    log_text = api.settings.resolve(api.settings.audit.file).read_text()  # type: ignore[arg-type]
    assert value not in log_text
    assert api.root not in log_text
    records = {r["request_id"]: r for r in map(json.loads, log_text.splitlines())}
    assert records[rid]["status"] == 200 and records[rid]["operation"] == "PUT"
    assert records[rid2]["path"] == "/v1/secrets/aud/x"
    assert records[rid3]["status"] == 403 and records[rid3]["accessor"] is None


async def test_audit_failure_is_503_and_recovers(make_api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file where the audit directory should be")
    api: Api = await make_api(audit={"file": str(blocker / "audit.log")})
    value = "never-" + rnd.token_hex(6)
    resp = await api.client.put("/v1/secrets/a/b", json={"data": {"k": value}}, headers=api.auth())
    assert resp.status == 503
    assert (await _errors(resp)) == ["audit log unavailable"]
    # Health is not audited, so probes still see the server as up; metrics count the refusal.
    assert (await api.client.get("/v1/sys/health")).status == 200
    text = await (await api.client.get("/metrics")).text()
    assert "vaultside_audit_failures_total 1.0" in text

    # Now known to be failing: a write is refused before it runs.
    resp = await api.client.put("/v1/secrets/a/c", json={"data": {"k": value}}, headers=api.auth())
    assert resp.status == 503

    blocker.unlink()
    blocker.mkdir()
    resp = await api.client.get("/v1/secrets/a/c", headers=api.auth())
    assert resp.status == 404  # the refused write was never applied
    resp = await api.client.put("/v1/secrets/a/c", json={"data": {"k": value}}, headers=api.auth())
    assert resp.status == 200
    assert (blocker / "audit.log").exists()
    assert value not in (blocker / "audit.log").read_text()


async def test_error_bodies_carry_the_code_of_their_class(make_api) -> None:  # type: ignore[no-untyped-def]
    """The client maps errors by ``code``: aiohttp's own 404/405, the auth, the seal gate."""
    api: Api = await make_api()
    for method, path, headers, status, code in [
        ("GET", "/v1/no/such/route", api.auth(), 404, "not_found"),
        ("PATCH", "/v1/secrets/a", api.auth(), 405, "method_not_allowed"),
        ("GET", "/v1/secrets/a", {}, 403, "permission_denied"),
        ("GET", "/v1/secrets/a", api.auth(), 404, "not_found"),
        ("GET", "/v1/secrets/a?bogus=1", api.auth(), 400, "invalid_request"),
    ]:
        resp = await api.client.request(method, path, headers=headers)
        body = await resp.json()
        assert (resp.status, body["code"]) == (status, code), (method, path, body)
    sealed: Api = await make_api(key=False)
    resp = await sealed.client.get("/v1/secrets/a", headers=sealed.auth("vs.x"))
    assert (resp.status, (await resp.json())["code"]) == (503, "sealed")
