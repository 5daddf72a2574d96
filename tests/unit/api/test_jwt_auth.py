"""The JWT auth method in the app, on the fake clock, keys from a JWKS file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.k8s_tokens import (
    ISSUER,
    Minter,
    SigningKey,
    ec_key,
    hmac_with_public_key,
    jwks,
    rsa_key,
    sign,
    unsigned,
)
from vaultside.config.settings import Settings

from .conftest import Api, ApiFactory

ROLE = {
    "policies": ["app-read"],
    "ttl": "15m",
    "bound_service_account_names": ["web", "worker-*"],
    "bound_service_account_namespaces": ["apps"],
}


@pytest.fixture
def key() -> SigningKey:
    return rsa_key()


@pytest.fixture
async def jwt_api(make_api: ApiFactory, tmp_path: Path, key: SigningKey) -> Api:
    keys_file = tmp_path / "jwks.json"
    keys_file.write_text(json.dumps(jwks(key)))
    api: Api = await make_api(
        auth={
            "jwt": {
                "issuer": ISSUER,
                "jwks_file": str(keys_file),
                "clock_skew": 5,
                "algorithms": ["RS256", "PS256", "ES256"],
            },
            # failures beyond the burst are held on the (fake) clock: keep them all at once
            "throttle_burst": 1000,
        },
        audit={"summary_interval": 0},  # every refusal gets its own record
    )
    await api.policy("app-read", [{"path": "secrets/app/*", "capabilities": ["read"]}])
    resp = await api.client.put("/v1/auth/jwt/roles/web", json=ROLE, headers=api.auth())
    assert resp.status == 204, await resp.text()
    return api


def minter(api: Api, key: SigningKey) -> Minter:
    return Minter(key, now=api.clock.now())


async def login(api: Api, token: str, role: str = "web") -> tuple[int, dict[str, Any]]:
    resp = await api.client.post("/v1/auth/jwt/login", json={"role": role, "jwt": token})
    return resp.status, await resp.json()


async def test_login_issues_an_ordinary_token(jwt_api: Api, key: SigningKey) -> None:
    status, body = await login(jwt_api, minter(jwt_api, key).mint())
    assert status == 200, body
    auth = body["auth"]
    assert auth["policies"] == ["app-read", "default"] and auth["ttl"] == 900
    resp = await jwt_api.client.get(
        "/v1/auth/token/lookup-self", headers=jwt_api.auth(auth["token"])
    )
    meta = (await resp.json())["data"]["meta"]
    assert meta["role"] == "web" and meta["sub"] == "system:serviceaccount:apps:web"
    assert meta["namespace"] == "apps" and meta["service_account"] == "web"
    # A glob binding, and an EC key in the same JWKS works as well.
    assert (await login(jwt_api, minter(jwt_api, key).mint(name="worker-1")))[0] == 200


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": ["other"]}, "audience"),
        ({"aud": None}, "aud"),
        ({"iss": "https://evil.example"}, "issuer"),
        ({"exp": 1_700_000_000 - 6}, "expired"),
        ({"nbf": 1_700_000_000 + 60}, "nbf"),
        ({"iat": 1_700_000_000 + 60}, "iat"),
        ({"exp": None}, "exp"),
        ({"sub": "system:serviceaccount:other:web"}, "disagree"),
    ],
)
async def test_bad_claims_are_refused(
    jwt_api: Api, key: SigningKey, overrides: dict[str, Any], reason: str
) -> None:
    status, body = await login(jwt_api, minter(jwt_api, key).mint(**overrides))
    assert status == 403
    assert reason in body["errors"][0]


async def test_clock_skew_is_allowed(jwt_api: Api, key: SigningKey) -> None:
    now = int(jwt_api.clock.now())
    token = minter(jwt_api, key).mint(exp=now - 4, nbf=now + 4, iat=now + 4)
    assert (await login(jwt_api, token))[0] == 200


async def test_namespace_and_name_outside_the_role(jwt_api: Api, key: SigningKey) -> None:
    status, body = await login(jwt_api, minter(jwt_api, key).mint(namespace="kube-system"))
    assert status == 403 and "namespace" in body["errors"][0]
    status, body = await login(jwt_api, minter(jwt_api, key).mint(name="admin"))
    assert status == 403 and "service account" in body["errors"][0]


async def test_forged_tokens_are_refused(jwt_api: Api, key: SigningKey) -> None:
    claims = minter(jwt_api, key).claims()
    for token, reason in [
        (unsigned(claims, key.kid), "algorithm"),
        (hmac_with_public_key(key, claims), "algorithm"),
        (sign(rsa_key(), claims, kid=key.kid), "signature"),
        (sign(rsa_key(), claims), "unknown key"),
        (jwt.encode(claims, key.private, algorithm="PS256", headers={"kid": key.kid}), "match"),
        ("not.a.jwt", "malformed"),
    ]:
        status, body = await login(jwt_api, token)
        assert status == 403, token
        assert reason in body["errors"][0]


async def test_unknown_role_and_unbound_claims(jwt_api: Api, key: SigningKey) -> None:
    token = minter(jwt_api, key).mint()
    status, body = await login(jwt_api, token, role="nope")
    assert status == 403 and "no such role" in body["errors"][0]
    role = {**ROLE, "bound_claims": {"/kubernetes.io/namespace": ["apps"], "team": ["blue"]}}
    resp = await jwt_api.client.put("/v1/auth/jwt/roles/team", json=role, headers=jwt_api.auth())
    assert resp.status == 204
    status, body = await login(jwt_api, token, role="team")
    assert status == 403 and "claim team" in body["errors"][0]
    status, _ = await login(jwt_api, minter(jwt_api, key).mint(team="blue"), role="team")
    assert status == 200


async def test_jwks_file_rotation_is_picked_up(
    jwt_api: Api, key: SigningKey, tmp_path: Path
) -> None:
    new = ec_key()
    token = Minter(new, now=jwt_api.clock.now()).mint()
    assert (await login(jwt_api, token))[0] == 403
    (tmp_path / "jwks.json").write_text(json.dumps(jwks(key, new)) + "\n")
    assert (await login(jwt_api, token))[0] == 200


async def test_roles_need_sudo(jwt_api: Api) -> None:
    plain = await jwt_api.token("default")
    for method, path in [
        ("GET", "/v1/auth/jwt/roles"),
        ("GET", "/v1/auth/jwt/roles/web"),
        ("DELETE", "/v1/auth/jwt/roles/web"),
    ]:
        resp = await jwt_api.client.request(method, path, headers=jwt_api.auth(plain))
        assert resp.status == 403
    resp = await jwt_api.client.get("/v1/auth/jwt/roles", headers=jwt_api.auth())
    assert (await resp.json())["roles"] == ["web"]
    resp = await jwt_api.client.get("/v1/auth/jwt/roles/web", headers=jwt_api.auth())
    assert (await resp.json())["ttl"] == 900
    resp = await jwt_api.client.put(
        "/v1/auth/jwt/roles/open", json={"policies": ["x"]}, headers=jwt_api.auth()
    )
    assert resp.status == 400  # binds nothing
    resp = await jwt_api.client.delete("/v1/auth/jwt/roles/web", headers=jwt_api.auth())
    assert resp.status == 204


async def test_failures_are_throttled_and_audited(jwt_api: Api, key: SigningKey) -> None:
    token = minter(jwt_api, key).mint(aud=["other"])
    for _ in range(3):
        assert (await login(jwt_api, token))[0] == 403
    assert jwt_api.services.throttle.delay_for("127.0.0.1") == 0.0
    assert len(jwt_api.services.throttle) == 1
    settings: Settings = jwt_api.settings
    audit = settings.resolve(settings.audit.file or Path("audit.log")).read_text()
    logins = [json.loads(line) for line in audit.splitlines() if "jwt/login" in line]
    assert len(logins) == 3
    assert all(r["status"] == 403 and "audience" in r["error"] for r in logins)
    assert token not in audit and token.split(".")[2] not in audit


async def test_login_while_not_configured_is_400(api: Api) -> None:
    resp = await api.client.post("/v1/auth/jwt/login", json={"role": "r", "jwt": "x.y.z"})
    assert resp.status == 400


def _raw(header: object, payload: object, sig: str = "c2ln") -> str:
    import base64

    def enc(obj: object) -> str:
        raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{enc(header)}.{enc(payload)}.{sig}"


async def test_hostile_inputs_are_4xx_never_5xx(jwt_api: Api, key: SigningKey) -> None:
    m = minter(jwt_api, key)
    claims = m.claims()
    signed = [
        m.mint(exp="soon"),
        m.mint(exp=float("nan")),
        m.mint(exp=float("inf")),
        m.mint(iat=float("-inf")),
        m.mint(nbf=[1]),
        m.mint(aud=5),
        m.mint(sub=["system:serviceaccount:apps:web"]),
        m.mint(**{"kubernetes.io": "apps"}),
        m.mint(**{"kubernetes.io": {"namespace": "apps", "serviceaccount": "web"}}),
        m.mint(sub="system:serviceaccount:apps:web:extra"),
        m.mint(sub="system:serviceaccount:" + "a" * 600 + ":web"),
        m.mint(iss=None),
    ]
    raw = [
        _raw([1, 2], claims),
        _raw({"alg": 256, "kid": key.kid}, claims),
        _raw({"alg": "RS256", "kid": 7}, claims),
        _raw({"alg": "RS256", "kid": key.kid}, b"not json"),
        _raw({"alg": "RS256", "kid": key.kid}, claims, sig="!!!"),
        "a.b", "....", "x" * 20000, "é.é.é",
    ]  # fmt: skip
    for token in signed + raw:
        resp = await jwt_api.client.post("/v1/auth/jwt/login", json={"role": "web", "jwt": token})
        assert 400 <= resp.status < 500, ((signed + raw).index(token), resp.status)
    bodies: list[dict[str, Any]] = [
        {"role": "web"},
        {"jwt": "a.b.c"},
        {"role": 1, "jwt": "a"},
        {"role": "../x", "jwt": "a"},
        {"role": "web", "jwt": "a", "x": 1},
    ]
    for body in bodies:
        resp = await jwt_api.client.post("/v1/auth/jwt/login", json=body)
        assert 400 <= resp.status < 500, (body, resp.status)


async def test_failed_logins_spend_the_client_budget_valid_ones_pass(
    make_api: ApiFactory, tmp_path: Path, key: SigningKey
) -> None:
    keys_file = tmp_path / "jwks2.json"
    keys_file.write_text(json.dumps(jwks(key)))
    api: Api = await make_api(
        auth={
            "jwt": {"issuer": ISSUER, "jwks_file": str(keys_file)},
            "throttle_burst": 2,
            "throttle_max_wait": 0,
        }
    )
    await api.policy("app-read", [{"path": "secrets/app/*", "capabilities": ["read"]}])
    assert (
        await api.client.put("/v1/auth/jwt/roles/web", json=ROLE, headers=api.auth())
    ).status == 204
    bad = minter(api, key).mint(aud=["other"])
    assert [(await login(api, bad))[0] for _ in range(3)] == [403, 403, 429]
    # SECURITY: validate first: a good JWT from the same client is not refused.
    assert (await login(api, minter(api, key).mint()))[0] == 200
