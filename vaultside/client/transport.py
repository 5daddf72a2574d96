"""The client's transport: HTTP to one vaultside server, and the one map from an error answer
back to a ``vaultside.errors`` exception.

Error answers carry ``{"errors": [...], "code": ..., "request_id": ...}``; ``error_from_response``
raises the class of the body's ``code`` (``_BY_CODE``), carrying the server's message, so callers
handle the same exceptions in- and out-of-process. A body without a known ``code`` (an older
server, a proxy's page) maps by HTTP status (``errors.BY_STATUS``). Transport failures
become ``UpstreamUnavailableError``.

Retries (``vaultside.retry``, the one policy): a connection that could not be made and a 503
answer (sealed, not ready) are retried for every method; other 5xx answers and transport
failures after the request was sent only for reads (GET/HEAD, and ``idempotent=True`` calls
such as resolve). Never a TLS failure, never a 4xx. The transport is built without retries;
``from_env`` (the CLI) waits up to ``VAULTSIDE_RETRY_TIMEOUT`` seconds (default 30, 0 = no
retry), then raises ``DeadlineExceededError``.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import aiohttp

from vaultside import errors
from vaultside.client_env import check_addr, env_retries, env_retry_timeout, env_timeout
from vaultside.retry import NO_RETRY, RetryPolicy, is_retryable, retry

DEFAULT_ADDR: Final = "http://127.0.0.1:8200"
DEFAULT_TIMEOUT: Final = 30.0
DEFAULT_RETRY_TIMEOUT: Final = 30.0  # from_env's default for VAULTSIDE_RETRY_TIMEOUT
_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS"})

# The codes a server sends, by class. ``deadline_exceeded`` is the server's own retry deadline:
# for this client a dependency was unavailable, retried under the client's own deadline.
_SENT: Final[tuple[type[errors.VaultsideError], ...]] = (
    *errors.BY_STATUS.values(),
    errors.SealedError,
)
_BY_CODE: Final[dict[str, type[errors.VaultsideError]]] = {cls.code: cls for cls in _SENT} | {
    errors.DeadlineExceededError.code: errors.UpstreamUnavailableError
}


def error_from_response(status: int, body: bytes) -> errors.VaultsideError:
    """The ``vaultside.errors`` instance for an error answer: by the body's ``code``, else by
    ``status`` (the one place the client maps errors)."""
    messages: list[str] = []
    request_id = code = ""
    try:
        obj = json.loads(body)
        if isinstance(obj, dict):
            messages = [str(m) for m in obj.get("errors") or []]
            request_id = str(obj.get("request_id") or "")
            code = str(obj.get("code") or "")
    except ValueError:
        pass
    message = messages[0] if messages else f"HTTP {status}"
    cls = _BY_CODE.get(code)
    if cls is None or cls.status != status:  # no code, an unknown one, or one that contradicts
        cls = errors.BY_STATUS.get(status, errors.InternalError)
    if cls is errors.InternalError:
        suffix = f" (request id {request_id})" if request_id else ""
        return errors.InternalError(f"{message}{suffix}", details=messages[1:])
    return cls(message, details=messages[1:])


class Transport:
    """HTTP to one vaultside server: connection pool, TLS, token, retries and error mapping.

    Use as ``async with`` or call ``close()``. ``VaultsideClient`` (``client.api``) adds the
    typed endpoints on top.
    """

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
        return (
            f"{type(self).__name__}(addr={self.addr!r}, token={'set' if self._token else 'unset'})"
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kw: Any) -> Self:
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

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def use_token(self, token: str) -> None:
        """Send ``token`` from now on (e.g. the one a login returned)."""
        self._token = token

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


def _may_retry(exc: BaseException, safe: bool) -> bool:
    """Whether a retryable error may be retried for this request (see the module docstring)."""
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientSSLError):
        return False  # SECURITY: a certificate problem does not go away by asking again
    if safe or isinstance(cause, aiohttp.ClientConnectorError):
        return True  # a read, or the request never left: nothing can have happened twice
    # The server answered 503 itself (sealed, not ready, dependency down): it did nothing.
    return cause is None and isinstance(exc, errors.VaultsideError) and exc.status == 503
