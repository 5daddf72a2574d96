"""The hvac adapter: the ONLY module that calls hvac (synchronous) — always off the event loop.

Every call runs in this broker's dedicated thread pool. hvac and requests exceptions are
translated here into ``vaultside.errors``: unreachable or sealed → ``UpstreamUnavailableError``,
404 → ``NotFoundError``, 403 → ``UpstreamForbiddenError`` (the auth layer decides whether the
broker's token went bad or a policy denies it), anything else → ``UpstreamError``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import hvac
import hvac.exceptions as hvac_exc
import requests

from vaultside.config.settings import BrokerSettings
from vaultside.errors import (
    NotFoundError,
    UpstreamError,
    UpstreamUnavailableError,
    VaultsideError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


class UpstreamForbiddenError(UpstreamError):
    """Vault/OpenBao answered 403: a bad/expired/revoked broker token or a policy denial."""


@dataclass(frozen=True, slots=True)
class UpstreamSecret:
    """What one upstream read returned. ``repr`` never shows ``data``."""

    data: dict[str, str] = field(repr=False)
    version: str
    lease_id: str | None = None
    lease_duration: float = 0.0
    renewable: bool = False
    metadata: dict[str, object] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class AuthResult:
    """A token from a login or renewal. ``repr`` never shows ``token``."""

    token: str = field(repr=False)
    accessor: str
    lease_duration: float
    renewable: bool


@dataclass(frozen=True, slots=True)
class MountInfo:
    """The secrets engine behind a mount: ``kind`` is ``kv`` (with ``kv_version``) or another."""

    kind: str
    kv_version: int | None


def _stringify(data: dict[str, Any]) -> dict[str, str]:
    return {str(k): v if isinstance(v, str) else _json_text(v) for k, v in data.items()}


def _json_text(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _upstream_errors(exc: hvac_exc.VaultError) -> str:
    errors = getattr(exc, "errors", None) or []
    text = "; ".join(str(e) for e in errors) if isinstance(errors, list) else str(errors)
    return text[:200] or type(exc).__name__


class VaultClient:
    """A synchronous hvac client driven from asyncio through a dedicated executor."""

    def __init__(self, name: str, settings: BrokerSettings, *, max_workers: int = 16) -> None:
        self.name = name
        self.settings = settings
        verify: bool | str = settings.tls_verify
        if not settings.tls_verify:
            log.warning("broker_tls_verify_disabled", extra={"broker": name})
        if settings.tls_verify and settings.ca_file is not None:
            verify = str(settings.ca_file)
        cert: tuple[str, str] | None = None
        if settings.client_cert_file and settings.client_key_file:
            cert = (str(settings.client_cert_file), str(settings.client_key_file))
        kwargs: dict[str, Any] = {
            "url": settings.address,
            "namespace": settings.namespace,
            "verify": verify,
            "cert": cert,
            "timeout": settings.request_timeout,
        }
        # The authenticated client; ``_anon`` never carries a token (logins, unwrap).
        self._client = hvac.Client(**kwargs)
        self._anon = hvac.Client(**kwargs)
        # SECURITY: hvac falls back to VAULT_TOKEN / ~/.vault-token; never pick up ambient tokens.
        self._client.token = None
        self._anon.token = None
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=f"hvac-{name}")

    def set_token(self, token: str | None) -> None:
        """Use ``token`` for every later authenticated call (attribute swap is atomic)."""
        self._client.token = token

    def close(self) -> None:
        """Stop the thread pool and close HTTP sessions."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        for c in (self._client, self._anon):
            c.adapter.close()

    async def _run(self, what: str, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, fn)
        except VaultsideError:
            raise
        except requests.exceptions.SSLError as exc:
            # A TLS failure is a configuration problem (CA bundle, name), not an outage:
            # never served stale, never retried as "unreachable".
            raise UpstreamError(
                f"broker {self.name!r}: TLS handshake with {self.settings.address} failed "
                "(check ca_file / tls_verify)"
            ) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise UpstreamUnavailableError(f"broker {self.name!r} is unreachable ({what})") from exc
        except hvac_exc.InvalidPath as exc:
            raise NotFoundError(f"broker {self.name!r}: {what}: not found") from exc
        except hvac_exc.Forbidden as exc:
            raise UpstreamForbiddenError(
                f"broker {self.name!r}: {what}: forbidden ({_upstream_errors(exc)})"
            ) from exc
        except (hvac_exc.VaultDown, hvac_exc.RateLimitExceeded, hvac_exc.BadGateway) as exc:
            raise UpstreamUnavailableError(
                f"broker {self.name!r} is unavailable ({what}: {_upstream_errors(exc)})"
            ) from exc
        except hvac_exc.VaultError as exc:
            raise UpstreamError(f"broker {self.name!r}: {what}: {_upstream_errors(exc)}") from exc
        except requests.RequestException as exc:
            raise UpstreamError(f"broker {self.name!r}: {what}: {type(exc).__name__}") from exc

    # --- secrets -------------------------------------------------------------------------------

    async def mount_info(self, mount: str) -> MountInfo:
        """Which engine serves ``mount`` (needs the token's access to something under it)."""

        def call() -> MountInfo:
            resp = self._client.adapter.get(f"/v1/sys/internal/ui/mounts/{mount}")
            data = resp.get("data", {}) if isinstance(resp, dict) else {}
            kind = str(data.get("type", ""))
            options = data.get("options") or {}
            kv_version: int | None = None
            if kind in ("kv", "generic"):
                kind = "kv"
                kv_version = 2 if str(options.get("version", "1")) == "2" else 1
            return MountInfo(kind, kv_version)

        return await self._run(f"mount info of {mount!r}", call)

    async def read_kv2(self, mount: str, path: str, version: int | None) -> UpstreamSecret:
        """A KV v2 secret, latest or pinned version (deleted/destroyed → ``NotFoundError``)."""

        def call() -> UpstreamSecret:
            resp = self._client.secrets.kv.v2.read_secret_version(
                path, version=version, mount_point=mount, raise_on_deleted_version=True
            )
            body = resp["data"]
            meta = dict(body.get("metadata") or {})
            return UpstreamSecret(
                _stringify(body.get("data") or {}), str(meta.get("version", "")), metadata=meta
            )

        return await self._run(f"read {mount}/{path}", call)

    async def read_kv2_metadata(self, mount: str, path: str) -> dict[str, object]:
        """A KV v2 secret's metadata (versions, times, custom metadata); no values."""

        def call() -> dict[str, object]:
            resp = self._client.secrets.kv.v2.read_secret_metadata(path, mount_point=mount)
            return dict(resp["data"])

        return await self._run(f"read metadata {mount}/{path}", call)

    async def write_kv2(
        self, mount: str, path: str, data: dict[str, str], cas: int | None = None
    ) -> int:
        """Write a new KV v2 version (``cas`` as in Vault: 0 = must not exist); its number."""

        def call() -> int:
            resp = self._client.secrets.kv.v2.create_or_update_secret(
                path, secret=data, cas=cas, mount_point=mount
            )
            return int(resp["data"]["version"])

        return await self._run(f"write {mount}/{path}", call)

    async def destroy_kv2_versions(self, mount: str, path: str, versions: list[int]) -> None:
        """Permanently remove KV v2 versions (their data is gone upstream)."""

        def call() -> None:
            self._client.secrets.kv.v2.destroy_secret_versions(path, versions, mount_point=mount)

        await self._run(f"destroy versions of {mount}/{path}", call)

    async def read_kv1(self, mount: str, path: str) -> UpstreamSecret:
        """A KV v1 secret (unversioned)."""

        def call() -> UpstreamSecret:
            resp = self._client.secrets.kv.v1.read_secret(path, mount_point=mount)
            return UpstreamSecret(_stringify(resp.get("data") or {}), "")

        return await self._run(f"read {mount}/{path}", call)

    async def read_generic(self, mount: str, path: str) -> UpstreamSecret:
        """A read on any engine (database creds and the like); lease fields when it issues one."""

        def call() -> UpstreamSecret:
            resp = self._client.read(f"{mount}/{path}")
            if not resp:
                raise NotFoundError(f"broker {self.name!r}: read {mount}/{path}: not found")
            lease_id = resp.get("lease_id") or None
            return UpstreamSecret(
                _stringify(resp.get("data") or {}),
                lease_id or "",
                lease_id=lease_id,
                lease_duration=float(resp.get("lease_duration") or 0),
                renewable=bool(resp.get("renewable")),
            )

        return await self._run(f"read {mount}/{path}", call)

    # --- leases --------------------------------------------------------------------------------

    async def renew_lease(self, lease_id: str, increment: float | None) -> tuple[float, bool]:
        """Renew a lease; returns (granted seconds, still renewable)."""

        def call() -> tuple[float, bool]:
            inc = int(increment) if increment else None
            resp = self._client.sys.renew_lease(lease_id=lease_id, increment=inc)
            return float(resp.get("lease_duration") or 0), bool(resp.get("renewable"))

        return await self._run("renew lease", call)

    async def lookup_lease(self, lease_id: str) -> float | None:
        """Seconds the lease has left upstream, or None if the upstream no longer knows it."""

        def call() -> float | None:
            try:
                resp = self._client.sys.read_lease(lease_id=lease_id)
            except hvac_exc.InvalidRequest as exc:
                if "invalid lease" in _upstream_errors(exc) or "not found" in _upstream_errors(exc):
                    return None  # revoked or expired upstream
                raise
            return float((resp.get("data") or {}).get("ttl") or 0)

        return await self._run("lease lookup", call)

    async def revoke_lease(self, lease_id: str) -> None:
        """Revoke a lease (idempotent upstream)."""
        await self._run("revoke lease", lambda: self._client.sys.revoke_lease(lease_id=lease_id))

    # --- auth ----------------------------------------------------------------------------------

    @staticmethod
    def _auth(resp: dict[str, Any]) -> AuthResult:
        auth = resp["auth"]
        return AuthResult(
            auth["client_token"],
            str(auth.get("accessor", "")),
            float(auth.get("lease_duration") or 0),
            bool(auth.get("renewable")),
        )

    async def login_approle(self, mount: str, role_id: str, secret_id: str) -> AuthResult:
        """AppRole login; does not change the client's token."""

        def call() -> AuthResult:
            resp = self._anon.auth.approle.login(
                role_id, secret_id, use_token=False, mount_point=mount
            )
            return self._auth(resp)

        return await self._run("approle login", call)

    async def login_jwt(self, mount: str, role: str, jwt: str) -> AuthResult:
        """JWT login; does not change the client's token."""

        def call() -> AuthResult:
            resp = self._anon.auth.jwt.jwt_login(role, jwt, use_token=False, path=mount)
            return self._auth(resp)

        return await self._run("jwt login", call)

    async def unwrap(self, wrapping_token: str) -> dict[str, str]:
        """Unwrap a response-wrapping token (single use) and return its data."""

        def call() -> dict[str, str]:
            resp = self._anon.adapter.post(
                "/v1/sys/wrapping/unwrap", headers={"X-Vault-Token": wrapping_token}
            )
            return _stringify(resp.get("data") or {})

        return await self._run("unwrap", call)

    async def lookup_self(self, token: str | None = None) -> AuthResult:
        """The current (or given) token's TTL and renewability."""

        def call() -> AuthResult:
            if token is None:
                resp = self._client.auth.token.lookup_self()
                tok = self._client.token or ""
            else:
                resp = self._anon.adapter.get(
                    "/v1/auth/token/lookup-self", headers={"X-Vault-Token": token}
                )
                tok = token
            data = resp["data"]
            return AuthResult(
                tok,
                str(data.get("accessor", "")),
                float(data.get("ttl") or 0),
                bool(data.get("renewable")),
            )

        return await self._run("token lookup", call)

    async def renew_self(self, token: str) -> AuthResult:
        """Renew ``token`` itself."""

        def call() -> AuthResult:
            resp = self._anon.adapter.post(
                "/v1/auth/token/renew-self", headers={"X-Vault-Token": token}, json={}
            )
            return self._auth(resp)

        return await self._run("token renewal", call)

    # --- transit -------------------------------------------------------------------------------

    async def transit_encrypt(self, mount: str, key: str, plaintext: bytes) -> str:
        """Encrypt with a transit key; returns the ``vault:vN:...`` ciphertext."""

        def call() -> str:
            resp = self._client.secrets.transit.encrypt_data(
                key, base64.b64encode(plaintext).decode(), mount_point=mount
            )
            return str(resp["data"]["ciphertext"])

        return await self._run(f"transit encrypt with {mount}/{key}", call)

    async def transit_decrypt(self, mount: str, key: str, ciphertext: str) -> bytes:
        """Decrypt a transit ciphertext."""

        def call() -> bytes:
            resp = self._client.secrets.transit.decrypt_data(key, ciphertext, mount_point=mount)
            return base64.b64decode(resp["data"]["plaintext"])

        return await self._run(f"transit decrypt with {mount}/{key}", call)
