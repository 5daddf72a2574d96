"""The typed vaultside API: one method for every route of docs/api.md, over the transport.

``VaultsideClient`` is a ``Transport`` (HTTP, TLS, token, retries, error mapping) plus typed
methods; the CLI, the sidecar and the plugin call these, never a raw path. Secret paths are
checked here (``check_path``) before they become part of a URL. Errors: the
``vaultside.errors`` class of the server's answer (``transport.error_from_response``),
``UpstreamUnavailableError`` when the server cannot be reached, and ``DeadlineExceededError``
once a retry policy gave up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from vaultside import errors
from vaultside.client.models import (
    BrokeredSecret,
    NotModified,
    SecretData,
    TokenAuth,
    secret_meta,
    version_meta,
)
from vaultside.client.transport import Transport
from vaultside.kv.models import SecretMeta, VersionMeta


def check_path(path: str, *, allow_empty: bool = False) -> str:
    """Normalise a secret path; reject what URL normalisation would silently rewrite."""
    stripped = path.strip("/")
    if not stripped:
        if allow_empty:
            return ""
        raise errors.InvalidRequestError("secret path is empty")
    # SECURITY: '..' or '.' segments would be collapsed by URL normalisation and could
    # address a different API route than the caller named; refuse them here.
    for seg in stripped.split("/"):
        if seg in ("", ".", "..") or ":" in seg or "?" in seg or "#" in seg:
            raise errors.InvalidRequestError(
                f"invalid secret path {path[:80]!r}: bad segment {seg[:40]!r}"
            )
    return stripped


class VaultsideClient(Transport):
    """An async client for one vaultside server; use as ``async with`` or call ``close()``."""

    # ---- secrets -------------------------------------------------------------------------

    async def read_secret(
        self, path: str, *, version: int | None = None, etag: str | None = None
    ) -> SecretData | NotModified:
        """Read the latest (or a given) version; ``NotModified`` if ``etag`` still matches."""
        p = check_path(path)
        params = {"version": str(version)} if version is not None else None
        headers = {"If-None-Match": etag} if etag else None
        status, obj, hdrs = await self.request(
            "GET", f"secrets/{p}", params=params, headers=headers
        )
        if status == 304:
            return NotModified(etag or "")
        data = {str(k): str(v) for k, v in (obj.get("data") or {}).items()}
        return SecretData(p, data, version_meta(obj["metadata"]), hdrs.get("ETag"))

    async def write_secret(
        self,
        path: str,
        data: Mapping[str, str],
        *,
        cas: int | None = None,
        secret_type: str | None = None,
    ) -> VersionMeta:
        """Write a new version; ``ConflictError`` if ``cas`` does not match."""
        body: dict[str, Any] = {"data": dict(data)}
        if cas is not None:
            body["cas"] = cas
        if secret_type is not None:
            body["type"] = secret_type
        _, obj, _ = await self.request("PUT", f"secrets/{check_path(path)}", body=body)
        return version_meta(obj["metadata"])

    async def list_secrets(self, prefix: str = "") -> list[str]:
        """Direct children of ``prefix``; sub-directories end with ``/``."""
        p = check_path(prefix, allow_empty=True)
        _, obj, _ = await self.request(
            "GET", f"secrets/{p}" if p else "secrets", params={"list": "true"}
        )
        return [str(k) for k in obj.get("keys", [])]

    async def delete_secret(self, path: str, versions: Sequence[int] | None = None) -> None:
        """Soft-delete the latest version, or the given ones."""
        p = check_path(path)
        if versions is None:
            await self.request("DELETE", f"secrets/{p}")
        else:
            await self.request("POST", f"secrets/{p}:delete", body={"versions": list(versions)})

    async def undelete_secret(self, path: str, versions: Sequence[int]) -> None:
        """Restore soft-deleted versions."""
        body = {"versions": list(versions)}
        await self.request("POST", f"secrets/{check_path(path)}:undelete", body=body)

    async def destroy_secret(self, path: str, versions: Sequence[int]) -> None:
        """Permanently destroy versions (crypto-shred)."""
        body = {"versions": list(versions)}
        await self.request("POST", f"secrets/{check_path(path)}:destroy", body=body)

    async def secret_versions(self, path: str) -> list[VersionMeta]:
        """Every kept version's metadata."""
        _, obj, _ = await self.request("GET", f"secrets/{check_path(path)}:versions")
        return [version_meta(v) for v in obj.get("versions", [])]

    async def read_metadata(self, path: str) -> SecretMeta:
        """The secret's metadata."""
        _, obj, _ = await self.request("GET", f"secrets/{check_path(path)}:metadata")
        return secret_meta(obj)

    async def write_metadata(
        self,
        path: str,
        *,
        max_versions: int | None = None,
        custom_metadata: Mapping[str, str] | None = None,
        secret_type: str | None = None,
        cas_required: bool | None = None,
    ) -> SecretMeta:
        """Change metadata fields that are not None."""
        body: dict[str, Any] = {}
        if max_versions is not None:
            body["max_versions"] = max_versions
        if custom_metadata is not None:
            body["custom_metadata"] = dict(custom_metadata)
        if secret_type is not None:
            body["type"] = secret_type
        if cas_required is not None:
            body["cas_required"] = cas_required
        _, obj, _ = await self.request("PUT", f"secrets/{check_path(path)}:metadata", body=body)
        return secret_meta(obj)

    async def delete_metadata(self, path: str) -> None:
        """Delete every version and the metadata."""
        await self.request("DELETE", f"secrets/{check_path(path)}:metadata")

    # ---- resolve -------------------------------------------------------------------------

    async def resolve(self, refs: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Resolve references; ``{ref: {"value", "version", "stale", "lease_id"}}``."""
        body = {"refs": list(refs)}
        _, obj, _ = await self.request("POST", "resolve", body=body, idempotent=True)
        values = obj.get("values") or {}
        return {str(k): dict(v) for k, v in values.items()}

    # ---- tokens --------------------------------------------------------------------------

    async def create_token(
        self,
        *,
        policies: Sequence[str],
        ttl: str | float | None = None,
        max_uses: int = 0,
        display_name: str = "",
        renewable: bool = True,
        meta: Mapping[str, str] | None = None,
    ) -> TokenAuth:
        """Create a child token of the client's token."""
        body: dict[str, Any] = {
            "policies": list(policies),
            "max_uses": max_uses,
            "display_name": display_name,
            "renewable": renewable,
            "meta": dict(meta or {}),
        }
        if ttl is not None:
            body["ttl"] = ttl
        _, obj, _ = await self.request("POST", "auth/token/create", body=body)
        return TokenAuth.from_json(obj["auth"])

    async def lookup_self(self) -> dict[str, Any]:
        """The client token's ``TokenInfo``."""
        _, obj, _ = await self.request("GET", "auth/token/lookup-self")
        return dict(obj.get("data") or {})

    async def lookup_token(
        self, *, token: str | None = None, accessor: str | None = None
    ) -> dict[str, Any]:
        """Another token's ``TokenInfo``, by token or accessor."""
        body = _token_or_accessor(token, accessor)
        _, obj, _ = await self.request("POST", "auth/token/lookup", body=body)
        return dict(obj.get("data") or {})

    async def renew_self(self, increment: str | float | None = None) -> dict[str, Any]:
        """Renew the client token."""
        body = {"increment": increment} if increment is not None else {}
        _, obj, _ = await self.request("POST", "auth/token/renew-self", body=body)
        return dict(obj.get("auth") or {})

    async def renew_token(
        self, accessor: str, increment: str | float | None = None
    ) -> dict[str, Any]:
        """Renew another token by accessor."""
        body: dict[str, Any] = {"accessor": accessor}
        if increment is not None:
            body["increment"] = increment
        _, obj, _ = await self.request("POST", "auth/token/renew", body=body)
        return dict(obj.get("auth") or obj.get("data") or {})

    async def revoke_token(self, *, token: str | None = None, accessor: str | None = None) -> None:
        """Revoke a token (and its children) by token or accessor."""
        await self.request("POST", "auth/token/revoke", body=_token_or_accessor(token, accessor))

    async def revoke_self(self) -> None:
        """Revoke the client token."""
        await self.request("POST", "auth/token/revoke-self", body={})

    # ---- policies ------------------------------------------------------------------------

    async def list_policies(self) -> list[str]:
        """Policy names."""
        _, obj, _ = await self.request("GET", "sys/policies")
        return [str(p) for p in obj.get("policies", [])]

    async def read_policy(self, name: str) -> dict[str, Any]:
        """A policy as JSON (``{"name"?, "rules": [...]}``)."""
        _, obj, _ = await self.request("GET", f"sys/policies/{check_path(name)}")
        return obj

    async def write_policy(self, name: str, rules: Sequence[Mapping[str, Any]]) -> None:
        """Create or replace a policy."""
        body = {"rules": [dict(r) for r in rules]}
        await self.request("PUT", f"sys/policies/{check_path(name)}", body=body)

    async def delete_policy(self, name: str) -> None:
        """Delete a policy."""
        await self.request("DELETE", f"sys/policies/{check_path(name)}")

    # ---- JWT auth (Kubernetes ServiceAccount tokens) -------------------------------------

    async def jwt_login(self, role: str, jwt: str) -> TokenAuth:
        """Exchange a signed JWT for a token of ``role`` (sends no token itself)."""
        body = {"role": role, "jwt": jwt}
        _, obj, _ = await self.request("POST", "auth/jwt/login", body=body, auth=False)
        return TokenAuth.from_json(obj["auth"])

    async def list_jwt_roles(self) -> list[str]:
        """Names of the JWT auth roles (sudo)."""
        _, obj, _ = await self.request("GET", "auth/jwt/roles")
        return [str(r) for r in obj.get("roles") or []]

    async def read_jwt_role(self, name: str) -> dict[str, Any]:
        """One JWT auth role (sudo)."""
        _, obj, _ = await self.request("GET", f"auth/jwt/roles/{check_path(name)}")
        return obj

    async def write_jwt_role(self, name: str, role: Mapping[str, Any]) -> None:
        """Create or replace a JWT auth role (sudo)."""
        await self.request("PUT", f"auth/jwt/roles/{check_path(name)}", body=dict(role))

    async def delete_jwt_role(self, name: str) -> None:
        """Delete a JWT auth role (sudo)."""
        await self.request("DELETE", f"auth/jwt/roles/{check_path(name)}")

    # ---- sys -----------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """``/v1/sys/health``; a sealed server (503) raises ``SealedError``."""
        _, obj, _ = await self.request("GET", "sys/health", auth=False)
        return obj

    async def seal_status(self) -> dict[str, Any]:
        """``/v1/sys/seal-status``."""
        _, obj, _ = await self.request("GET", "sys/seal-status", auth=False)
        return obj

    async def rotate_key(self) -> dict[str, Any]:
        """Start a new barrier key term (``sudo`` on ``sys/rotate-key``); ``{"term": ...}``."""
        _, obj, _ = await self.request("POST", "sys/rotate-key")
        return obj

    async def key_status(self) -> dict[str, Any]:
        """The barrier key terms and the background rewrap's progress."""
        _, obj, _ = await self.request("GET", "sys/key-status")
        return obj

    async def leaders(self) -> list[dict[str, Any]]:
        """Who leads each leader-only job (``job``, ``holder``, ``since``, ``until``, ...)."""
        _, obj, _ = await self.request("GET", "sys/leaders")
        return [dict(item) for item in obj.get("leaders", [])]

    async def openapi(self) -> dict[str, Any]:
        """The server's OpenAPI document."""
        _, obj, _ = await self.request("GET", "openapi.json", auth=False)
        return obj

    # ---- rotation ------------------------------------------------------------------------

    async def list_rotation_policies(self) -> list[str]:
        """Paths that have a rotation policy."""
        _, obj, _ = await self.request("GET", "rotation/policies")
        return [str(k) for k in obj.get("keys", [])]

    async def read_rotation_policy(self, path: str) -> dict[str, Any]:
        """The rotation policy of secret ``path`` (docs/rotation.md)."""
        _, obj, _ = await self.request("GET", f"rotation/policies/{check_path(path)}")
        return dict(obj.get("policy") or {})

    async def write_rotation_policy(self, path: str, policy: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace the rotation policy of ``path``; the server's answer."""
        p = check_path(path)
        _, obj, _ = await self.request("PUT", f"rotation/policies/{p}", body=dict(policy))
        return obj

    async def delete_rotation_policy(self, path: str) -> None:
        """Stop rotating ``path``."""
        await self.request("DELETE", f"rotation/policies/{check_path(path)}")

    async def rotate(self, path: str) -> dict[str, Any]:
        """Rotate ``path`` now; the run (``result`` ``ok`` or the failed ``step`` and ``error``)."""
        _, obj, _ = await self.request("POST", f"rotation/rotate/{check_path(path)}")
        return dict(obj.get("run") or {})

    async def rotation_status(self, path: str) -> dict[str, Any]:
        """Current version, policy, state, grace periods and consumers of ``path``."""
        _, obj, _ = await self.request("GET", f"rotation/status/{check_path(path)}")
        return obj

    async def rotation_history(self, path: str, *, limit: int = 20) -> list[dict[str, Any]]:
        """Past rotation runs of ``path``, newest first."""
        params = {"limit": str(limit)}
        _, obj, _ = await self.request("GET", f"rotation/history/{check_path(path)}", params=params)
        return [dict(r) for r in obj.get("runs", [])]

    async def report_consumer(
        self,
        consumer: str,
        kind: str,
        holdings: Mapping[str, int],
        *,
        container: str | None = None,
    ) -> None:
        """A heartbeat: which version of each secret ``consumer`` holds (never values)."""
        body: dict[str, object] = {"consumer": consumer, "kind": kind, "holdings": dict(holdings)}
        if container is not None:
            body["container"] = container
        await self.request("POST", "consumers", body=body)

    # ---- broker --------------------------------------------------------------------------

    async def read_brokered(
        self, broker: str, mount: str, path: str, *, version: int | None = None
    ) -> BrokeredSecret:
        """A secret read from Vault/OpenBao through the server's broker ``broker``."""
        params = {"version": str(version)} if version is not None else None
        _, obj, hdrs = await self.request("GET", _broker_path(broker, mount, path), params=params)
        return BrokeredSecret(
            data={str(k): str(v) for k, v in (obj.get("data") or {}).items()},
            metadata=dict(obj.get("metadata") or {}),
            lease=obj.get("lease"),
            stale=hdrs.get("X-Vaultside-Stale") == "true",
        )

    async def read_brokered_metadata(self, broker: str, mount: str, path: str) -> Any:
        """A KV v2 secret's metadata through the broker (versions and times, no values)."""
        _, obj, _ = await self.request("GET", _broker_path(broker, mount, path) + ":metadata")
        return obj.get("metadata")

    # ---- scans ---------------------------------------------------------------------------

    async def start_scan(
        self,
        kind: str,
        targets: Sequence[str] = (),
        *,
        all_containers: bool = False,
        rotate_leaked: bool = False,
    ) -> dict[str, Any]:
        """Start a scan on the server (``image`` or ``containers``); the record to poll."""
        body = {
            "kind": kind,
            "targets": list(targets),
            "all": all_containers,
            "rotate_leaked": rotate_leaked,
        }
        _, obj, _ = await self.request("POST", "scans", body=body)
        return obj

    async def list_scans(self) -> list[dict[str, Any]]:
        """Every known scan, newest first, without findings."""
        _, obj, _ = await self.request("GET", "scans")
        return [dict(s) for s in obj.get("scans", [])]

    async def read_scan(self, scan_id: str) -> dict[str, Any]:
        """One scan record with its redacted findings."""
        _, obj, _ = await self.request("GET", f"scans/{quote(scan_id, safe='')}")
        return obj

    async def known_index(self) -> dict[str, Any]:
        """The known-value index (keyed fingerprints, no plaintext) for client-side scans."""
        _, obj, _ = await self.request("GET", "scans/known-index")
        return obj


def _broker_path(broker: str, mount: str, path: str) -> str:
    return f"broker/{check_path(broker)}/{check_path(mount)}/{check_path(path)}"


def _token_or_accessor(token: str | None, accessor: str | None) -> dict[str, str]:
    if (token is None) == (accessor is None):
        raise errors.InvalidRequestError("give exactly one of token or accessor")
    return {"token": token} if token is not None else {"accessor": accessor or ""}
