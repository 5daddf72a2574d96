"""The request pipeline, outermost first: request id + metrics + response headers, audit,
error boundary, seal gate + body limit, authentication, ``100 Continue``.

Order matters: the error boundary turns every exception into a response, so the audit
middleware around it records the status the client gets; if the audit write itself fails
the client gets 503 instead (fail closed), built by the same error boundary function.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
import traceback
from collections.abc import Awaitable, Callable

from aiohttp import HttpVersion11, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from vaultside.api.body import dumps
from vaultside.api.clients import Client
from vaultside.api.state import (
    AUDIT_STATE,
    CLIENT,
    CLIENTS,
    ERROR,
    EXPECT,
    MALFORMED,
    METRICS,
    REQUEST_ID,
    SEAL_STATE,
    SERVICES,
    TOKEN,
)
from vaultside.audit.events import AuditEvent
from vaultside.errors import (
    BY_STATUS,
    ExpectationFailedError,
    InternalError,
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    SealedError,
    VaultsideError,
)

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Paths that answer without a token and while sealed (probes, scrapers, docs).
PUBLIC_PATHS = frozenset({"/v1/sys/health", "/v1/sys/seal-status", "/metrics", "/v1/openapi.json"})
# Paths that take no token but stay behind the seal gate (they issue tokens themselves).
LOGIN_PATHS = frozenset({"/v1/auth/jwt/login"})
# High-frequency probes carry no identity and touch no secret: not audited.
UNAUDITED_PATHS = frozenset({"/v1/sys/health", "/metrics"})
_MAX_TOKEN = 512
METRICS_PATH = "/metrics"


def is_public(request: web.Request) -> bool:
    """A ``PUBLIC_PATHS`` request, except ``/metrics`` under ``metrics.require_token``."""
    if request.path not in PUBLIC_PATHS:
        return False
    return request.path != METRICS_PATH or not request.app[SERVICES].settings.metrics.require_token


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Request ids need to be unique, not secret: a random per-process prefix and a counter are
# cheaper than reading the OS's random source on every request.
_ID_PREFIX = secrets.token_hex(4)
_ID_COUNTER = itertools.count(1)


def route_template(request: web.Request) -> str:
    """The matched route's template (``/v1/secrets/{path}``), or ``unmatched``."""
    route = request.match_info.route
    resource = route.resource
    return resource.canonical if resource is not None else "unmatched"


def error_response(request: web.Request, exc: VaultsideError) -> web.Response:
    """The one mapping of an error to a response:
    ``{"errors": [...], "code": <the error class's code>, "request_id": ...}``."""
    messages = exc.public_messages()
    request[ERROR] = f"{exc.code}: {messages[0]}" if messages else exc.code
    body = {"errors": messages, "code": exc.code, "request_id": request.get(REQUEST_ID, "")}
    return web.Response(body=dumps(body), status=exc.status, content_type="application/json")


def _translate_http(request: web.Request, exc: web.HTTPException) -> VaultsideError:
    if isinstance(exc, web.HTTPNotFound):
        # SECURITY: the path is client input: not echoed (it is in the audit record).
        return NotFoundError(f"no route for {request.method[:16]} on this path")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return MethodNotAllowedError(
            f"method {request.method[:16]} not allowed on this path; allowed: {allowed}"
        )
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        limit = request.app[SERVICES].settings.server.max_body_bytes
        return PayloadTooLargeError(f"request body larger than {limit} bytes")
    known = BY_STATUS.get(exc.status)
    if known is not None:
        return known(exc.reason)  # so the body's ``code`` names the status's class
    err = VaultsideError(exc.reason)
    err.status = exc.status  # type: ignore[misc]
    return err


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give each request an id (``X-Request-Id`` on every response) and count it."""
    started = time.perf_counter()
    request_id = f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"
    request[REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except Exception as exc:
        # Last resort: the inner boundary should have produced a response already.
        log.error("unhandled error outside the boundary", extra={"request_id": request_id})
        response = error_response(request, _internal(request, exc))
    response.headers["X-Request-Id"] = request_id
    # Instead of aiohttp's default, which names the Python and aiohttp versions.
    response.headers["Server"] = "vaultside"
    # SECURITY: responses carry tokens and secret values: never cached, never content-sniffed.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    request.app[METRICS].observe(
        route_template(request), request.method, response.status, time.perf_counter() - started
    )
    return response


def _internal(request: web.Request, exc: BaseException) -> InternalError:
    # SECURITY: log the type and the frames only; an exception message may quote a value.
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error(
        "internal error",
        extra={
            "request_id": request.get(REQUEST_ID, ""),
            "error_type": type(exc).__name__,
            "frames": frames,
        },
    )
    return InternalError("internal error")


def _client_cn(request: web.Request) -> str | None:
    """The common name of a verified TLS client certificate, if one was presented."""
    transport = request.transport
    if not request.secure or transport is None:
        return None
    peer = transport.get_extra_info("peercert")
    if not peer:
        return None
    for rdn in peer.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)[:128]
    return None


def client_of(request: web.Request) -> Client:
    """The request's client (resolved once: peer, trusted proxy, unix peer credentials)."""
    client = request.get(CLIENT)
    if client is None:
        client = request[CLIENT] = request.app[CLIENTS].resolve(request)
    return client


def _audit_event(request: web.Request, status: int, started: float, phase: str) -> AuditEvent:
    token = request.get(TOKEN)
    extra = {"route": route_template(request), "phase": phase}
    client_cn = _client_cn(request)
    if client_cn is not None:
        extra["tls_client_cn"] = client_cn
    client = client_of(request)
    if client.via is not None:
        extra["via"] = client.via
    return AuditEvent(
        time=request.app[SERVICES].clock.now(),
        request_id=request[REQUEST_ID],
        accessor=token.accessor if token is not None else None,
        policies=token.policies if token is not None else (),
        operation=request.method,
        path=request.path,
        status=status,
        client=client.address,
        latency_ms=(time.perf_counter() - started) * 1000.0,
        error=request.get(ERROR) if status >= 400 else None,
        extra=extra,
    )


async def _audit(
    request: web.Request, event: AuditEvent, denial_of: str | None = None
) -> web.Response | None:
    """Write ``event``; None if written, else the 503 to send instead (and mark degraded).

    ``denial_of``: the client key of an unidentified denial, which may be summarised.
    """
    state = request.app[AUDIT_STATE]
    try:
        if denial_of is not None:
            await request.app[SERVICES].audit.log_denial(denial_of, event)
        else:
            await request.app[SERVICES].audit.log(event)
    except Exception as exc:
        state.degraded = True
        request.app[METRICS].audit_failures.inc()
        log.error("audit write failed", extra={"request_id": request[REQUEST_ID]})
        if isinstance(exc, VaultsideError) and not isinstance(exc, InternalError):
            return error_response(request, exc)
        return error_response(request, _internal(request, exc))
    state.degraded = False
    return None


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Write one audit record per request before the response leaves; 503 if none is written.

    While the last audit write failed, a request that may change state first writes a
    ``phase: request`` record and is refused (not executed) if that fails too: during an
    audit outage only the requests that discover it may have been applied despite their 503.
    """
    # A /metrics that needs a token is audited like any authenticated request.
    if request.path in UNAUDITED_PATHS and is_public(request):
        return await handler(request)
    started = time.perf_counter()
    if request.app[AUDIT_STATE].degraded and request.method not in _SAFE_METHODS:
        refused = await _audit(request, _audit_event(request, 0, started, "request"))
        if refused is not None:
            return refused
    response = await handler(request)
    event = _audit_event(request, response.status, started, "response")
    # SECURITY: an unidentified client's repeated denials are summarised (one record per
    # client per interval with a count) so anonymous floods cannot fill the audit disk.
    denial_of = None
    if request.get(TOKEN) is None and 400 <= response.status < 500:
        denial_of = client_of(request).key
    # SECURITY: fail closed — the response is only released after its record is written
    # (a summarised denial: after it was counted; its window's first denial was written).
    refused = await _audit(request, event, denial_of)
    return refused if refused is not None else response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The error boundary: every exception becomes a JSON error response with its status."""
    try:
        return await handler(request)
    except VaultsideError as exc:
        if isinstance(exc, InternalError):
            return error_response(request, _internal(request, exc))
        return error_response(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(request, _translate_http(request, exc))
        if response.status == web.HTTPRequestEntityTooLarge.status_code:
            response.force_close()  # rather than reading (lingering on) the unwanted body
        return response
    except (HttpProcessingError, RequestPayloadError) as exc:
        # A body aiohttp cannot decode (bad gzip/deflate, broken chunking): the client's fault.
        # SECURITY: the exception's message may quote the body; only its class is shown.
        kind = type(exc.__cause__ or exc).__name__
        response = error_response(
            request, InvalidRequestError(f"request body cannot be read ({kind})")
        )
        response.force_close()
        return response
    except Exception as exc:
        return error_response(request, _internal(request, exc))


@web.middleware
async def gate_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse oversized bodies early (413) and everything but public paths while sealed (503)."""
    malformed = request.get(MALFORMED)
    if malformed is not None:
        raise InvalidRequestError(f"malformed HTTP request ({malformed})")
    length = request.content_length
    if length is not None and length > request.app[SERVICES].settings.server.max_body_bytes:
        raise web.HTTPRequestEntityTooLarge(
            max_size=request.app[SERVICES].settings.server.max_body_bytes, actual_size=length
        )
    if is_public(request):
        return await handler(request)
    state = request.app[SEAL_STATE]
    if state.sealed:
        raise SealedError(f"vaultside is sealed: {state.public_reason}")
    return await handler(request)


# Headers that may carry the token: ``Authorization: Bearer``, ours, and Vault's (so
# Vault-habit tooling just works). Several may be sent, but they must carry the same token.
_TOKEN_HEADERS = ("X-Vaultside-Token", "X-Vault-Token")


def _bearer(request: web.Request) -> str | None:
    """The presented token; None if absent or malformed; 400 if two headers disagree."""
    found: list[str | None] = []
    for header in request.headers.getall("Authorization", ()):
        scheme, _, value = header.partition(" ")
        found.append(value.strip() if scheme.lower() == "bearer" and value.strip() else None)
    for name in _TOKEN_HEADERS:
        found.extend(request.headers.getall(name, ()))
    if not found:
        return None
    # SECURITY: never guess which of two different credentials the client meant.
    if any(value != found[0] for value in found[1:]):
        raise InvalidRequestError(
            "the token headers (Authorization, X-Vaultside-Token, "
            "X-Vault-Token) disagree; send one token"
        )
    return found[0]


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate the token (Bearer, ``X-Vaultside-Token`` or ``X-Vault-Token``) of every
    non-public request."""
    if is_public(request) or request.path in LOGIN_PATHS:
        return await handler(request)
    services = request.app[SERVICES]
    token = _bearer(request)
    if not token or len(token) > _MAX_TOKEN:
        # No guess was made, so the throttle is not charged.
        raise PermissionDeniedError("permission denied: missing or malformed token")
    try:
        info = await services.tokens.authenticate(token)
    except PermissionDeniedError as exc:
        # SECURITY: validate first; only a failure is charged (and held for its slot), so
        # a valid token is never slowed or refused by anyone's failures, its client's too.
        await services.throttle.failed(client_of(request).key, exc)
        raise
    request[TOKEN] = info
    return await handler(request)


@web.middleware
async def continue_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer ``Expect: 100-continue`` only once the size check and authentication passed."""
    expect = request.get(EXPECT)
    if expect is not None:
        if expect.lower() != "100-continue":
            raise ExpectationFailedError("unsupported Expect header; only 100-continue")
        if request.version == HttpVersion11:
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0
    return await handler(request)


MIDDLEWARES = (
    request_id_middleware,
    audit_middleware,
    error_middleware,
    gate_middleware,
    auth_middleware,
    continue_middleware,
)
