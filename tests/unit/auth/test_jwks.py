"""JWKS key sources: URL checks, discovery, caching and rate-limited refetch on unknown kid."""

from __future__ import annotations

from typing import Any

import pytest

from tests.k8s_tokens import ec_key, jwks, rsa_key
from vaultside.auth.jwks import JwksKeys, KeySourceConfig, check_url, parse_jwks
from vaultside.clock import FakeClock
from vaultside.errors import InvalidRequestError, PermissionDeniedError, UpstreamUnavailableError

ISSUER = "https://issuer.example"


class FakeFetcher:
    """Serves documents by URL and counts requests."""

    def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
        self.docs = docs
        self.calls: list[str] = []

    async def __call__(self, url: str) -> dict[str, Any]:
        self.calls.append(url)
        if url not in self.docs:
            raise UpstreamUnavailableError(f"{url} answered HTTP 404")
        return self.docs[url]


@pytest.mark.parametrize(
    "url",
    ["https://k8s.example/openid/v1/jwks", "http://127.0.0.1:8080/jwks", "http://[::1]/k",
     "http://localhost:1/k"],
)  # fmt: skip
def test_https_or_loopback_urls_pass(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    "url", ["http://k8s.example/jwks", "ftp://127.0.0.1/x", "https:///x", "file:///etc/x"]
)
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidRequestError):
        check_url(url)


def test_symmetric_and_encryption_keys_are_dropped() -> None:
    good = rsa_key()
    doc = jwks(good)
    doc["keys"].append({"kty": "oct", "kid": "h", "k": "c2VjcmV0"})
    doc["keys"].append({**ec_key().jwk(), "use": "enc"})
    assert list(parse_jwks(doc)) == [good.kid]


async def test_unknown_kid_refetches_at_most_once_per_interval() -> None:
    clock = FakeClock()
    old, new = rsa_key(), ec_key()
    fetch = FakeFetcher({"https://k/jwks": jwks(old)})
    keys = JwksKeys(
        KeySourceConfig(url="https://k/jwks"), clock=clock, fetch=fetch, refetch_interval=10
    )
    assert (await keys.key(old.kid)).kid == old.kid
    assert len(fetch.calls) == 1
    fetch.docs["https://k/jwks"] = jwks(old, new)  # the issuer rotates
    for _ in range(5):
        with pytest.raises(PermissionDeniedError, match="unknown key"):
            await keys.key(new.kid)  # within the interval: no refetch storm
    assert len(fetch.calls) == 1
    await clock.advance(10)
    assert (await keys.key(new.kid)).kid == new.kid
    assert len(fetch.calls) == 2
    await clock.advance(10)
    for _ in range(3):
        with pytest.raises(PermissionDeniedError):
            await keys.key("made-up")
    assert len(fetch.calls) == 3
    assert (await keys.key(old.kid)).kid == old.kid  # a known kid never refetches
    assert len(fetch.calls) == 3


async def test_cache_ttl_refreshes_known_keys() -> None:
    clock = FakeClock()
    key = rsa_key()
    fetch = FakeFetcher({"https://k/jwks": jwks(key)})
    keys = JwksKeys(KeySourceConfig(url="https://k/jwks"), clock=clock, fetch=fetch, cache_ttl=60)
    await keys.key(key.kid)
    await clock.advance(59)
    await keys.key(key.kid)
    assert len(fetch.calls) == 1
    await clock.advance(1)
    await keys.key(key.kid)
    assert len(fetch.calls) == 2


async def test_discovery_follows_jwks_uri_of_the_same_issuer() -> None:
    clock = FakeClock()
    key = rsa_key()
    fetch = FakeFetcher(
        {
            f"{ISSUER}/.well-known/openid-configuration": {
                "issuer": ISSUER,
                "jwks_uri": "https://10.0.0.1:6443/openid/v1/jwks",
            },
            "https://10.0.0.1:6443/openid/v1/jwks": jwks(key),
        }
    )
    keys = JwksKeys(KeySourceConfig(discovery_issuer=ISSUER), clock=clock, fetch=fetch)
    assert (await keys.key(key.kid)).kid == key.kid
    assert fetch.calls == [
        f"{ISSUER}/.well-known/openid-configuration",
        "https://10.0.0.1:6443/openid/v1/jwks",
    ]


@pytest.mark.parametrize(
    "config",
    [
        {"issuer": "https://evil.example", "jwks_uri": "https://k/jwks"},
        {"issuer": ISSUER, "jwks_uri": "http://k.example/jwks"},
        {"issuer": ISSUER},
    ],
)
async def test_bad_discovery_documents_are_unavailable(config: dict[str, Any]) -> None:
    fetch = FakeFetcher({f"{ISSUER}/.well-known/openid-configuration": config})
    keys = JwksKeys(KeySourceConfig(discovery_issuer=ISSUER), clock=FakeClock(), fetch=fetch)
    with pytest.raises(UpstreamUnavailableError):
        await keys.key("any")


async def test_unreachable_issuer_is_503_not_a_client_failure() -> None:
    keys = JwksKeys(KeySourceConfig(url="https://k/jwks"), clock=FakeClock(), fetch=FakeFetcher({}))
    with pytest.raises(UpstreamUnavailableError):
        await keys.key("kid")


async def test_http_fetcher_limits() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from vaultside.auth.jwks import HttpFetcher

    async def ok(_: web.Request) -> web.Response:
        return web.json_response(jwks(rsa_key()))

    async def huge(_: web.Request) -> web.Response:
        return web.Response(body=b"[" + b"0," * 600_000 + b"0]", content_type="application/json")

    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPFound("/ok")

    async def missing(_: web.Request) -> web.Response:
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/huge", huge)
    app.router.add_get("/moved", moved)
    app.router.add_get("/missing", missing)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        fetch = HttpFetcher(timeout=5)
        base = f"http://127.0.0.1:{server.port}"
        assert len((await fetch(base + "/ok"))["keys"]) == 1
        for path, why in [("/huge", "more than"), ("/moved", "HTTP 302"), ("/missing", "HTTP 404")]:
            with pytest.raises(UpstreamUnavailableError, match=why):
                await fetch(base + path)
        with pytest.raises(InvalidRequestError):
            await fetch(f"http://10.0.0.1:{server.port}/ok")  # not loopback: never contacted
    finally:
        await server.close()
