"""Public keys that verify JWTs: a JWKS file, a JWKS URL, or OIDC discovery of the issuer.

``JwksKeys.key(kid)`` returns the verification key for a key id. Keys are cached: a file is
re-read when its inode, modification time or size changes; remote keys after ``cache_ttl``, and
sooner when a token names a key id the cache does not hold (a rotation), but never more often
than ``refetch_interval`` so a flood of made-up key ids cannot turn into a flood of fetches.

Only asymmetric keys (RSA, EC, OKP) are kept: a symmetric (``oct``) key in a JWKS is dropped,
so an HMAC "signed" with a public key can never verify. Remote URLs must be https unless the
host is loopback. Callers handle ``PermissionDeniedError`` (unknown key id) and
``UpstreamUnavailableError`` (keys could not be fetched or parsed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jwt

from vaultside.clock import Clock
from vaultside.errors import InvalidRequestError, PermissionDeniedError, UpstreamUnavailableError
from vaultside.netloc import is_loopback

log = logging.getLogger(__name__)

DISCOVERY_PATH = "/.well-known/openid-configuration"
_MAX_DOCUMENT = 1024 * 1024
_ASYMMETRIC = frozenset({"RSA", "EC", "OKP"})

# (url) -> parsed JSON document; injected so the fetch policy is testable without a network.
Fetcher = Callable[[str], Awaitable[dict[str, Any]]]


def check_url(url: str) -> str:
    """``url`` if it is https, or http to a loopback host; ``InvalidRequestError`` otherwise."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and is_loopback(host):
        return url
    raise InvalidRequestError(f"key URL must be https (http only to loopback): {url[:200]}")


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """One public key of a JWKS: its id, the key object, and the ``alg`` the JWK declares."""

    kid: str
    key: Any
    alg: str | None


def parse_jwks(doc: object) -> dict[str, VerificationKey]:
    """The usable asymmetric keys of a JWKS document, by ``kid`` ("" for a key without one)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise UpstreamUnavailableError("JWKS is not an object with a 'keys' list")
    keys: dict[str, VerificationKey] = {}
    for entry in doc["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") not in _ASYMMETRIC:
            continue  # SECURITY: no symmetric keys, ever
        if entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            log.warning("JWKS key skipped: unusable", extra={"kid": str(entry.get("kid"))[:64]})
            continue
        kid = str(entry.get("kid") or "")
        alg = entry.get("alg")
        keys[kid] = VerificationKey(kid, key.key, alg if isinstance(alg, str) else None)
    return keys


@dataclass(frozen=True, slots=True)
class KeySourceConfig:
    """Where keys come from: exactly one of ``file``, ``url`` or ``issuer`` (discovery)."""

    file: Path | None = None
    url: str | None = None
    discovery_issuer: str | None = None


class HttpFetcher:
    """GET a JSON document over https (or loopback http), size- and time-limited."""

    def __init__(
        self, *, timeout: float, ca_file: Path | None = None, token_file: Path | None = None
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._ssl = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._token_file = token_file

    async def __call__(self, url: str) -> dict[str, Any]:
        """The JSON object at ``url``; ``UpstreamUnavailableError`` on any failure."""
        check_url(url)
        headers = {"Accept": "application/json"}
        if self._token_file is not None:
            token = await asyncio.to_thread(self._token_file.read_text)
            headers["Authorization"] = f"Bearer {token.strip()}"
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.get(url, headers=headers, ssl=self._ssl, allow_redirects=False) as resp,
            ):
                if resp.status != 200:
                    raise UpstreamUnavailableError(f"{url[:200]} answered HTTP {resp.status}")
                body = bytearray()
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > _MAX_DOCUMENT:
                        raise UpstreamUnavailableError(
                            f"{url[:200]} sent more than {_MAX_DOCUMENT} bytes"
                        )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise UpstreamUnavailableError(
                f"cannot fetch {url[:200]}: {type(exc).__name__}"
            ) from exc
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise UpstreamUnavailableError(f"{url[:200]} did not send JSON") from exc
        if not isinstance(doc, dict):
            raise UpstreamUnavailableError(f"{url[:200]} did not send a JSON object")
        return doc


class JwksKeys:
    """Cached verification keys by key id, refreshed on rotation (rate-limited)."""

    def __init__(
        self,
        source: KeySourceConfig,
        *,
        clock: Clock,
        fetch: Fetcher,
        cache_ttl: float = 3600.0,
        refetch_interval: float = 10.0,
    ) -> None:
        self._source = source
        self._clock = clock
        self._fetch = fetch
        self._cache_ttl = cache_ttl
        self._refetch_interval = refetch_interval
        self._keys: dict[str, VerificationKey] = {}
        self._loaded_at: float | None = None
        self._file_stamp: tuple[int, int, int] | None = None
        self._last_error: UpstreamUnavailableError | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> VerificationKey:
        """The key for ``kid`` ("" = the token named none: only if there is one key)."""
        await self._refresh(force=False)
        found = self._lookup(kid)
        if found is None:
            await self._refresh(force=True)
            found = self._lookup(kid)
        if found is None and self._last_error is not None:
            # The issuer is unreachable: a server-side outage, not the client's failure.
            raise self._last_error
        if found is None:
            raise PermissionDeniedError("JWT login refused: signed by an unknown key")
        return found

    def _lookup(self, kid: str) -> VerificationKey | None:
        if kid:
            return self._keys.get(kid)
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            now = self._clock.monotonic()
            if self._source.file is not None:
                await self._reload_file()
                return
            age = None if self._loaded_at is None else now - self._loaded_at
            if age is not None and (
                age < self._refetch_interval or (not force and age < self._cache_ttl)
            ):
                return
            # A failed fetch also counts: an unreachable issuer is not hammered.
            self._loaded_at = now
            try:
                self._keys = parse_jwks(await self._fetch(await self._jwks_url()))
            except (UpstreamUnavailableError, InvalidRequestError) as exc:
                self._last_error = UpstreamUnavailableError(exc.message)
                log.warning("JWKS fetch failed", extra={"error": exc.message})
                return
            self._last_error = None
            log.info("JWKS fetched", extra={"keys": len(self._keys)})

    async def _jwks_url(self) -> str:
        if self._source.url is not None:
            return check_url(self._source.url)
        issuer = (self._source.discovery_issuer or "").rstrip("/")
        doc = await self._fetch(check_url(issuer + DISCOVERY_PATH))
        if doc.get("issuer") not in (issuer, issuer + "/"):
            raise UpstreamUnavailableError("OIDC discovery document names another issuer")
        jwks_uri = doc.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise UpstreamUnavailableError("OIDC discovery document has no jwks_uri")
        return check_url(jwks_uri)

    async def _reload_file(self) -> None:
        path = self._source.file
        assert path is not None
        try:
            st = await asyncio.to_thread(path.stat)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp == self._file_stamp:
                return
            self._keys = parse_jwks(json.loads(await asyncio.to_thread(path.read_bytes)))
        except (OSError, ValueError, UpstreamUnavailableError) as exc:
            # Keep the last good keys; a half-written file is retried on the next login.
            self._last_error = UpstreamUnavailableError(f"cannot read JWKS file {path}")
            log.warning("JWKS file unreadable", extra={"error_type": type(exc).__name__})
            return
        self._file_stamp, self._last_error = stamp, None
        log.info("JWKS file loaded", extra={"keys": len(self._keys)})
