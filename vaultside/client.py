"""Async typed HTTP client for the vaultside API (``docs/api-contract.md``).

Error responses are mapped back to the ``vaultside.errors`` class of their status, carrying
the server's message, so callers handle the same exceptions in- and out-of-process.
Transport failures become ``UpstreamUnavailableError``.

Retries (``vaultside.retry``, the one policy): a connection that could not be made and a 503
answer (sealed, not ready) are retried for every method; other 5xx answers and transport
failures after the request was sent only for reads (GET/HEAD, and ``idempotent=True`` calls
such as resolve). Never a TLS failure, never a 4xx. The client is built without retries;
``from_env`` (the CLI) waits up to ``VAULTSIDE_RETRY_TIMEOUT`` seconds (default 30, 0 = no
retry), then raises ``DeadlineExceededError``.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import aiohttp

from vaultside import errors
from vaultside.broker.base import ResolvedSecret
from vaultside.client_env import check_addr, env_retries, env_retry_timeout, env_timeout
from vaultside.refs import SecretRef, parse_ref
from vaultside.retry import NO_RETRY, RetryPolicy, is_retryable, retry

DEFAULT_ADDR: Final = "http://127.0.0.1:8200"
DEFAULT_TIMEOUT: Final = 30.0
RESOLVE_BATCH: Final = 256
DEFAULT_RETRY_TIMEOUT: Final = 30.0  # from_env's default for VAULTSIDE_RETRY_TIMEOUT
_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS"})

_BY_STATUS: Final[dict[int, type[errors.VaultsideError]]] = {
    400: errors.InvalidRequestError,
    403: errors.PermissionDeniedError,
    404: errors.NotFoundError,
    405: errors.MethodNotAllowedError,
    409: errors.ConflictError,
    413: errors.PayloadTooLargeError,
    429: errors.TooManyRequestsError,
    502: errors.UpstreamError,
    503: errors.UpstreamUnavailableError,
}


@dataclass(frozen=True, slots=True)
class NotModified:
    """Marker returned by ``read_secret`` when the server answered 304 for an ``etag``."""

    etag: str


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """Metadata of one secret version (times are RFC3339 strings as sent by the server)."""

    version: int
    created_time: str
    deletion_time: str | None
    destroyed: bool

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> VersionInfo:
        """Build from the contract's ``VersionMeta`` object."""
        return cls(
            version=int(obj["version"]),
            created_time=str(obj.get("created_time") or ""),
            deletion_time=obj.get("deletion_time"),
            destroyed=bool(obj.get("destroyed", False)),
        )


@dataclass(frozen=True, slots=True)
class SecretData:
    """One version of a secret as read over HTTP. ``repr`` never shows the values."""

    path: str
    data: dict[str, str]
    metadata: VersionInfo
    etag: str | None = None

    def __repr__(self) -> str:
        # SECURITY: values stay out of reprs (and so out of logs and tracebacks).
        return (
            f"SecretData(path={self.path!r}, fields={sorted(self.data)}, v={self.metadata.version})"
        )


@dataclass(frozen=True, slots=True)
class SecretMetadata:
    """A secret's metadata and its versions."""

    path: str
    secret_type: str
    current_version: int
    oldest_version: int
    max_versions: int
    cas_required: bool
    created_time: str
    updated_time: str
    custom_metadata: dict[str, str]
    versions: dict[int, VersionInfo]

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> SecretMetadata:
        """Build from the contract's ``SecretMeta`` object."""
        versions = {int(k): VersionInfo.from_json(v) for k, v in obj.get("versions", {}).items()}
        return cls(
            path=str(obj.get("path", "")),
            secret_type=str(obj.get("type", "generic")),
            current_version=int(obj.get("current_version", 0)),
            oldest_version=int(obj.get("oldest_version", 0)),
            max_versions=int(obj.get("max_versions", 0)),
            cas_required=bool(obj.get("cas_required", False)),
            created_time=str(obj.get("created_time") or ""),
            updated_time=str(obj.get("updated_time") or ""),
            custom_metadata={str(k): str(v) for k, v in obj.get("custom_metadata", {}).items()},
            versions=versions,
        )


@dataclass(frozen=True, slots=True)
class TokenAuth:
    """A freshly created token: the only time the token itself is shown. ``repr`` hides it."""

    token: str = field(repr=False)
    accessor: str
    policies: tuple[str, ...]
    expire_time: str | None
    ttl: float | None
    renewable: bool

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TokenAuth:
        """Build from the contract's ``TokenAuth`` object."""
        ttl = obj.get("ttl")
        return cls(
            token=str(obj["token"]),
            accessor=str(obj["accessor"]),
            policies=tuple(obj.get("policies", ())),
            expire_time=obj.get("expire_time"),
            ttl=float(ttl) if ttl is not None else None,
            renewable=bool(obj.get("renewable", False)),
        )


def _check_path(path: str, *, allow_empty: bool = False) -> str:
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


def error_from_response(status: int, body: bytes) -> errors.VaultsideError:
    """The ``vaultside.errors`` instance for an error response (status + JSON body)."""
    messages: list[str] = []
    request_id = ""
    try:
        obj = json.loads(body)
        if isinstance(obj, dict):
            messages = [str(m) for m in obj.get("errors") or []]
            request_id = str(obj.get("request_id") or "")
    except ValueError:
        pass
    message = messages[0] if messages else f"HTTP {status}"
    if status == 503 and "sealed" in message.lower():
        return errors.SealedError(message, details=messages[1:])
    cls = _BY_STATUS.get(status)
    if cls is None:
        suffix = f" (request id {request_id})" if request_id else ""
        return errors.InternalError(f"{message}{suffix}", details=messages[1:])
    return cls(message, details=messages[1:])


class VaultsideClient:
    """An async client for one vaultside server; use as ``async with`` or call ``close()``."""

    def __init__(
        self,
        addr: str,
        token: str | None,
        *,
        ca_file: Path | str | None = None,
        client_cert: Path | str | tuple[Path | str, Path | str] | None = None,
        unix_socket: Path | str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = 100,
        ca_path: Path | str | None = None,
        tls_server_name: str | None = None,
        max_retries: int | None = None,
        retry: RetryPolicy = NO_RETRY,
    ) -> None:
        check_addr(addr)
        self.addr = addr.rstrip("/")
        self.timeout = timeout
        # The caller's limit on retries (VAULTSIDE_MAX_RETRIES; None: only the policy's deadline).
        self.max_retries = max_retries
        self._ca_path = ca_path
        self._tls_server_name = tls_server_name
        self._token = token
        self._ca_file = ca_file
        self._client_cert = client_cert
        self._unix_socket = unix_socket
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_connections = max_connections
        self.retry = retry if max_retries is None else replace(retry, max_retries=max_retries)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        # SECURITY: never show the token.
        return f"VaultsideClient(addr={self.addr!r}, token={'set' if self._token else 'unset'})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kw: Any) -> VaultsideClient:
        """Build from the ``client_env.CLIENT_ENV`` variables (Vault's names, ``VAULTSIDE_``).

        Retries follow ``VAULTSIDE_RETRY_TIMEOUT`` (default 30 s, 0 = none) and
        ``VAULTSIDE_MAX_RETRIES``. Raises ``InvalidRequestError`` naming the variable when one
        is malformed.
        """
        env = os.environ if env is None else env
        token = env.get("VAULTSIDE_TOKEN") or None
        token_file = env.get("VAULTSIDE_TOKEN_FILE")
        if token is None and token_file:
            try:
                token = Path(token_file).read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                raise errors.InvalidRequestError(
                    f"cannot read VAULTSIDE_TOKEN_FILE {token_file}: {exc.strerror}"
                ) from exc
        cert_file = env.get("VAULTSIDE_CLIENT_CERT") or None
        key_file = env.get("VAULTSIDE_CLIENT_KEY") or None
        cert: str | tuple[str, str] | None = cert_file
        if cert_file and key_file:
            cert = (cert_file, key_file)
        kw.setdefault("ca_file", env.get("VAULTSIDE_CACERT") or None)
        kw.setdefault("client_cert", cert)
        kw.setdefault("unix_socket", env.get("VAULTSIDE_SOCKET") or None)
        kw.setdefault("ca_path", env.get("VAULTSIDE_CAPATH") or None)
        kw.setdefault("tls_server_name", env.get("VAULTSIDE_TLS_SERVER_NAME") or None)
        if "timeout" not in kw and (text := env.get("VAULTSIDE_CLIENT_TIMEOUT", "").strip()):
            kw["timeout"] = env_timeout(text)
        if "max_retries" not in kw and (text := env.get("VAULTSIDE_MAX_RETRIES", "").strip()):
            kw["max_retries"] = env_retries(text)
        if "retry" not in kw:
            text = env.get("VAULTSIDE_RETRY_TIMEOUT", "").strip()
            seconds = env_retry_timeout(text) if text else DEFAULT_RETRY_TIMEOUT
            kw["retry"] = RetryPolicy(timeout=seconds)
        return cls(env.get("VAULTSIDE_ADDR") or DEFAULT_ADDR, token, **kw)

    async def __aenter__(self) -> VaultsideClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.addr.startswith("https://"):
            return None
        ctx = ssl.create_default_context(
            cafile=str(self._ca_file) if self._ca_file else None,
            capath=str(self._ca_path) if self._ca_path else None,
        )
        if isinstance(self._client_cert, tuple):
            ctx.load_cert_chain(str(self._client_cert[0]), str(self._client_cert[1]))
        elif self._client_cert is not None:
            ctx.load_cert_chain(str(self._client_cert))
        return ctx

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector: aiohttp.BaseConnector
            if self._unix_socket is not None:
                connector = aiohttp.UnixConnector(
                    path=str(self._unix_socket), limit=self._max_connections
                )
            else:
                ctx = self._ssl_context()
                connector = aiohttp.TCPConnector(
                    limit=self._max_connections, ssl=ctx if ctx is not None else True
                )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, raise_for_status=False
            )
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        idempotent: bool | None = None,
    ) -> tuple[int, dict[str, Any], Mapping[str, str]]:
        """Send one request to ``/v1/<path>``; returns (status, JSON body, headers).

        Raises the mapped ``VaultsideError`` for any status >= 400 and
        ``UpstreamUnavailableError`` if the server cannot be reached; with a retry policy,
        retries as the module docstring says (``idempotent`` overrides the method's default),
        then ``DeadlineExceededError``.
        """
        hdrs = dict(headers or {})
        if auth and self._token:
            hdrs["Authorization"] = f"Bearer {self._token}"
        url = f"{self.addr}/v1/{path}"
        safe = method.upper() in _IDEMPOTENT if idempotent is None else idempotent

        def retry_on(exc: BaseException) -> bool:
            return is_retryable(exc) and _may_retry(exc, safe)

        status, raw, resp_headers = await retry(
            lambda: self._send(method, url, body, params, hdrs),
            what=f"{method.upper()} {self.addr}/v1/{path.split('/', 1)[0]}",
            policy=self.retry,
            retry_on=retry_on,
        )
        if status in (204, 304) or not raw:
            return status, {}, resp_headers
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise errors.UpstreamError(f"invalid JSON from vaultside (HTTP {status})") from exc
        return status, obj if isinstance(obj, dict) else {"value": obj}, resp_headers

    async def _send(
        self,
        method: str,
        url: str,
        body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
        hdrs: dict[str, str],
    ) -> tuple[int, bytes, Mapping[str, str]]:
        """One attempt: (status, raw body, headers), or the mapped error."""
        try:
            async with self._get_session().request(
                method,
                url,
                json=body,
                params=params,
                headers=hdrs,
                server_hostname=self._tls_server_name,
            ) as resp:
                raw = await resp.read()
                status, resp_headers = resp.status, resp.headers
        except aiohttp.ClientSSLError as exc:
            # SECURITY: no downgrade or retry without verification; say why it failed.
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise errors.UpstreamUnavailableError(
                f"TLS with vaultside at {self.addr} failed: {reason}"
            ) from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            # SECURITY: the exception text of the transport never includes the token header.
            raise errors.UpstreamUnavailableError(
                f"cannot reach vaultside at {self.addr}: {type(exc).__name__}"
            ) from exc
        if status >= 400:
            raise error_from_response(status, raw)
        return status, raw, resp_headers

    # ---- secrets -------------------------------------------------------------------------

    async def read_secret(
        self, path: str, *, version: int | None = None, etag: str | None = None
    ) -> SecretData | NotModified:
        """Read the latest (or a given) version; ``NotModified`` if ``etag`` still matches."""
        p = _check_path(path)
        params = {"version": str(version)} if version is not None else None
        headers = {"If-None-Match": etag} if etag else None
        status, obj, hdrs = await self.request(
            "GET", f"secrets/{p}", params=params, headers=headers
        )
        if status == 304:
            return NotModified(etag or "")
        data = {str(k): str(v) for k, v in (obj.get("data") or {}).items()}
        return SecretData(p, data, VersionInfo.from_json(obj["metadata"]), hdrs.get("ETag"))

    async def write_secret(
        self,
        path: str,
        data: Mapping[str, str],
        *,
        cas: int | None = None,
        secret_type: str | None = None,
    ) -> VersionInfo:
        """Write a new version; ``ConflictError`` if ``cas`` does not match."""
        body: dict[str, Any] = {"data": dict(data)}
        if cas is not None:
            body["cas"] = cas
        if secret_type is not None:
            body["type"] = secret_type
        _, obj, _ = await self.request("PUT", f"secrets/{_check_path(path)}", body=body)
        return VersionInfo.from_json(obj["metadata"])

    async def list_secrets(self, prefix: str = "") -> list[str]:
        """Direct children of ``prefix``; sub-directories end with ``/``."""
        p = _check_path(prefix, allow_empty=True)
        _, obj, _ = await self.request(
            "GET", f"secrets/{p}" if p else "secrets", params={"list": "true"}
        )
        return [str(k) for k in obj.get("keys", [])]

    async def delete_secret(self, path: str, versions: Sequence[int] | None = None) -> None:
        """Soft-delete the latest version, or the given ones."""
        p = _check_path(path)
        if versions is None:
            await self.request("DELETE", f"secrets/{p}")
        else:
            await self.request("POST", f"secrets/{p}:delete", body={"versions": list(versions)})

    async def undelete_secret(self, path: str, versions: Sequence[int]) -> None:
        """Restore soft-deleted versions."""
        body = {"versions": list(versions)}
        await self.request("POST", f"secrets/{_check_path(path)}:undelete", body=body)

    async def destroy_secret(self, path: str, versions: Sequence[int]) -> None:
        """Permanently destroy versions (crypto-shred)."""
        body = {"versions": list(versions)}
        await self.request("POST", f"secrets/{_check_path(path)}:destroy", body=body)

    async def secret_versions(self, path: str) -> list[VersionInfo]:
        """Every kept version's metadata."""
        _, obj, _ = await self.request("GET", f"secrets/{_check_path(path)}:versions")
        return [VersionInfo.from_json(v) for v in obj.get("versions", [])]

    async def read_metadata(self, path: str) -> SecretMetadata:
        """The secret's metadata."""
        _, obj, _ = await self.request("GET", f"secrets/{_check_path(path)}:metadata")
        return SecretMetadata.from_json(obj)

    async def write_metadata(
        self,
        path: str,
        *,
        max_versions: int | None = None,
        custom_metadata: Mapping[str, str] | None = None,
        secret_type: str | None = None,
        cas_required: bool | None = None,
    ) -> SecretMetadata:
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
        _, obj, _ = await self.request("PUT", f"secrets/{_check_path(path)}:metadata", body=body)
        return SecretMetadata.from_json(obj)

    async def delete_metadata(self, path: str) -> None:
        """Delete every version and the metadata."""
        await self.request("DELETE", f"secrets/{_check_path(path)}:metadata")

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
        _, obj, _ = await self.request("GET", f"sys/policies/{_check_path(name)}")
        return obj

    async def write_policy(self, name: str, rules: Sequence[Mapping[str, Any]]) -> None:
        """Create or replace a policy."""
        body = {"rules": [dict(r) for r in rules]}
        await self.request("PUT", f"sys/policies/{_check_path(name)}", body=body)

    async def delete_policy(self, name: str) -> None:
        """Delete a policy."""
        await self.request("DELETE", f"sys/policies/{_check_path(name)}")

    # ---- JWT auth (Kubernetes ServiceAccount tokens) -------------------------------------

    def use_token(self, token: str) -> None:
        """Send ``token`` from now on (e.g. the one a login returned)."""
        self._token = token

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
        _, obj, _ = await self.request("GET", f"auth/jwt/roles/{_check_path(name)}")
        return obj

    async def write_jwt_role(self, name: str, role: Mapping[str, Any]) -> None:
        """Create or replace a JWT auth role (sudo)."""
        await self.request("PUT", f"auth/jwt/roles/{_check_path(name)}", body=dict(role))

    async def delete_jwt_role(self, name: str) -> None:
        """Delete a JWT auth role (sudo)."""
        await self.request("DELETE", f"auth/jwt/roles/{_check_path(name)}")

    # ---- sys -----------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """``/v1/sys/health``; a sealed server (503) raises ``SealedError``."""
        _, obj, _ = await self.request("GET", "sys/health", auth=False)
        return obj

    async def seal_status(self) -> dict[str, Any]:
        """``/v1/sys/seal-status``."""
        _, obj, _ = await self.request("GET", "sys/seal-status", auth=False)
        return obj


def _may_retry(exc: BaseException, safe: bool) -> bool:
    """Whether a retryable error may be retried for this request (see the module docstring)."""
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientSSLError):
        return False  # SECURITY: a certificate problem does not go away by asking again
    if safe or isinstance(cause, aiohttp.ClientConnectorError):
        return True  # a read, or the request never left: nothing can have happened twice
    # The server answered 503 itself (sealed, not ready, dependency down): it did nothing.
    return cause is None and isinstance(exc, errors.VaultsideError) and exc.status == 503


def _token_or_accessor(token: str | None, accessor: str | None) -> dict[str, str]:
    if (token is None) == (accessor is None):
        raise errors.InvalidRequestError("give exactly one of token or accessor")
    return {"token": token} if token is not None else {"accessor": accessor or ""}


class HttpSecretSource:
    """A ``SecretSource`` that resolves references through a vaultside server's ``/v1/resolve``."""

    def __init__(self, client: VaultsideClient) -> None:
        self.client = client

    async def resolve(self, ref: SecretRef) -> ResolvedSecret:
        """The current (or pinned) value of one reference."""
        return (await self.resolve_many([ref]))[str(ref)]

    async def resolve_many(self, refs: Sequence[SecretRef | str]) -> dict[str, ResolvedSecret]:
        """Resolve several references in one request; keyed by ``str(ref)`` (for a string,
        the string as given, so ``"kv:a#b@01"`` is found under that key too).

        Any failing reference fails the whole call with its mapped error.
        """
        given = {(r if isinstance(r, str) else str(r)): r for r in refs}
        parsed = {k: r if isinstance(r, SecretRef) else parse_ref(r) for k, r in given.items()}
        if not parsed:
            return {}
        keys = list(dict.fromkeys(str(r) for r in parsed.values()))
        values: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), RESOLVE_BATCH):  # the server takes ≤ 256 per request
            values |= await self.client.resolve(keys[start : start + RESOLVE_BATCH])
        out: dict[str, ResolvedSecret] = {}
        for key, ref in parsed.items():
            item = values.get(str(ref))
            if item is None or "value" not in item:
                raise errors.UpstreamError(f"server did not resolve {ref}")
            out[key] = ResolvedSecret(
                ref=ref,
                value=str(item["value"]),
                version=str(item.get("version", "")),
                lease_id=item.get("lease_id"),
                stale=bool(item.get("stale", False)),
            )
        return out
