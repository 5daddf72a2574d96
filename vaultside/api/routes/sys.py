"""``/v1/sys/*`` (health, seal status, key rotation), ``/metrics`` and ``/v1/openapi.json``."""

from __future__ import annotations

import logging
import os

from aiohttp import web

from vaultside import __version__
from vaultside.api.body import json_response
from vaultside.api.responses import Response
from vaultside.api.spec import Json, Operation, add_operations, query_param
from vaultside.api.state import (
    BACKGROUND,
    METRICS,
    METRICS_LISTENER,
    OPENAPI_BODY,
    SEAL_STATE,
    SERVICES,
    authorize,
)
from vaultside.clock import rfc3339
from vaultside.cluster import leaders
from vaultside.cluster.leaders import LeaderJobRef, leader_status
from vaultside.errors import InvalidRequestError, NotFoundError
from vaultside.services import Services

log = logging.getLogger(__name__)

REWRAP_LOCK = "sys/rewrap"
REWRAP_JOB = "rewrap"
_LOCK_TTL = 60.0


class Health(Response):
    """``/v1/sys/health`` (Vault's shape)."""

    initialized: bool
    sealed: bool
    standby: bool
    server_time_utc: int
    version: str


class SealStatus(Response):
    """Sealed or not, and why (no paths of the key material)."""

    sealed: bool
    initialized: bool
    seal_type: str
    reason: str | None
    unseal_attempts: int
    version: str


class RotateKey(Response):
    """The new key term; the rewrap runs in the background."""

    term: int
    rewrap: str


class KeyTerm(Response):
    """One key term (epoch seconds; never key material)."""

    term: int
    created_time: int | float


class RewrapProgress(Response):
    """Where the rewrap to ``target_term`` got to."""

    target_term: int
    after: str
    rewritten: int
    done: bool


class KeyStatus(Response):
    """Key terms, the active one and rewrap progress."""

    sealed: bool
    seal: str
    active_term: int
    terms: list[KeyTerm]
    rewrap: RewrapProgress | None


class Leader(Response):
    """A leader-only job: its storage lease, holder, since and until when."""

    job: str
    lease: str
    enabled: bool
    holder: str | None
    since: str | None
    until: str | None


class Leaders(Response):
    """Each leader-only job."""

    leaders: list[Leader]


def _initialized(services: Services) -> bool:
    return all(p.exists() for p in services.seal_material)


# Vault's ``/v1/sys/health`` query overrides and their defaults. Every vaultside server is
# active (replicas all serve), so ``standbyok``/``standbycode`` are validated but never apply.
_HEALTH_CODES = {
    "activecode": 200,
    "standbycode": 429,
    "sealedcode": 503,
    "uninitcode": 501,
    "drsecondarycode": 472,
    "performancestandbycode": 473,
    "recoverystandbycode": 503,
}
_HEALTH_FLAGS = ("standbyok", "perfstandbyok")
_TRUE = frozenset({"", "1", "t", "true", "T", "TRUE", "True"})
_FALSE = frozenset({"0", "f", "false", "F", "FALSE", "False"})


def _health_codes(request: web.Request) -> dict[str, int]:
    """The status codes asked for by the query (Vault's names); 400 on a bad value."""
    codes = dict(_HEALTH_CODES)
    query = request.query
    for name in _HEALTH_CODES:
        if name not in query:
            continue
        text = query[name]
        if not (text.isascii() and text.isdigit() and 200 <= int(text) <= 599):
            raise InvalidRequestError(f"{name} must be an HTTP status code from 200 to 599")
        codes[name] = int(text)
    for flag in _HEALTH_FLAGS:
        if flag in query and query[flag] not in _TRUE | _FALSE:
            raise InvalidRequestError(f"{flag} must be true or false")
    return codes


async def health(request: web.Request) -> web.Response:
    """``GET``/``HEAD /v1/sys/health``: 200 when unsealed, 503 when sealed, 501 when not
    initialized; Vault's ``activecode``, ``sealedcode``, ``uninitcode``, ``standbyok`` (and
    ``standbycode`` ...) query overrides pick other codes (for load balancers)."""
    codes = _health_codes(request)
    services = request.app[SERVICES]
    sealed = request.app[SEAL_STATE].sealed
    initialized = _initialized(services)
    if not initialized:
        status = codes["uninitcode"]
    elif sealed:
        status = codes["sealedcode"]
    else:
        status = codes["activecode"]
    body = Health(
        initialized=initialized,
        sealed=sealed,
        standby=False,
        server_time_utc=int(services.clock.now()),
        version=__version__,
    )
    return json_response(body, status=status)


async def seal_status(request: web.Request) -> web.Response:
    """``GET /v1/sys/seal-status``: always 200, with why the server is sealed."""
    services = request.app[SERVICES]
    state = request.app[SEAL_STATE]
    body = SealStatus(
        sealed=state.sealed,
        initialized=_initialized(services),
        seal_type=services.seal.kind,
        # SECURITY: unauthenticated: no absolute paths of the key material.
        reason=state.public_reason if state.sealed else None,
        unseal_attempts=state.attempts,
        version=__version__,
    )
    return json_response(body)


async def run_rewrap(services: Services, batch_size: int = 500) -> int:
    """Re-encrypt everything under the active key, holding a lease so one process does it."""
    holder = f"pid-{os.getpid()}"
    storage = services.storage
    total = 0
    if not await storage.try_lock(REWRAP_LOCK, holder, _LOCK_TTL):
        log.info("rewrap already running elsewhere")
        return 0
    await leaders.report(services.leaders, services.clock, REWRAP_JOB, holder, True)
    try:
        while True:
            done = await services.barrier.rewrap(batch_size)
            total += done
            if done == 0:
                break
            if not await storage.try_lock(REWRAP_LOCK, holder, _LOCK_TTL):
                log.warning("rewrap lease lost; another process continues")
                break
    finally:
        leaders.mark(REWRAP_JOB, holder, False)
        await storage.unlock(REWRAP_LOCK, holder)
    log.info("rewrap finished", extra={"records": total})
    return total


async def rewrap_quietly(services: Services) -> None:
    """``run_rewrap`` for a background task: failures are logged, never raised."""
    try:
        await run_rewrap(services)
    except Exception as exc:
        # Resumable: progress is persisted, the next rotate-key or restart continues.
        log.error("rewrap failed", extra={"error_type": type(exc).__name__})


async def rotate_key(request: web.Request) -> web.Response:
    """``POST /v1/sys/rotate-key`` (sudo): new active key term, rewrap in the background."""
    await authorize(request, "sys/rotate-key", "sudo")
    services = request.app[SERVICES]
    term = await services.barrier.rotate_key()
    log.info("root keyring rotated", extra={"term": term})
    request.app[BACKGROUND].spawn(rewrap_quietly(services), "rewrap")
    return json_response(RotateKey(term=term, rewrap="started"))


async def key_status(request: web.Request) -> web.Response:
    """``GET /v1/sys/key-status``: key terms and rewrap progress (no key material)."""
    await authorize(request, "sys/key-status", "read")
    status = await request.app[SERVICES].barrier.key_status()
    return json_response(KeyStatus.model_validate(status))


async def leaders_view(request: web.Request) -> web.Response:
    """``GET /v1/sys/leaders``: each leader-only job, its holder, since and until when."""
    await authorize(request, "sys/leaders", "read")
    services = request.app[SERVICES]
    jobs = [*services.leader_jobs, LeaderJobRef(REWRAP_JOB, REWRAP_LOCK)]
    found = await leader_status(services.barrier, services.leaders, jobs)
    for item in found:
        for name in ("since", "until"):
            value = item[name]
            item[name] = rfc3339(value) if isinstance(value, float) else None
    return json_response(Leaders.model_validate({"leaders": found}))


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text, or OpenMetrics when the ``Accept`` header asks.

    With ``metrics.listen`` only that listener serves it (404 on the API port); with
    ``metrics.require_token`` the caller needs ``read`` on ``sys/metrics``.
    """
    cfg = request.app[SERVICES].settings.metrics
    if cfg.listen and not request.app.get(METRICS_LISTENER, False):
        raise NotFoundError("metrics are served on their own listener (metrics.listen)")
    if cfg.require_token:
        await authorize(request, "sys/metrics", "read")
    app_metrics = request.app[METRICS]
    app_metrics.sealed.set(1 if request.app[SEAL_STATE].sealed else 0)
    body, content_type = app_metrics.render(request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type})


async def openapi(request: web.Request) -> web.Response:
    """``GET /v1/openapi.json``: the OpenAPI 3.1 document of this API."""
    return web.Response(body=request.app[OPENAPI_BODY], content_type="application/json")


_CODE: Json = {"type": "integer", "minimum": 200, "maximum": 599}
_HEALTH_PARAMS = (
    *(query_param(name, _CODE) for name in ("activecode", "standbycode", "sealedcode")),
    query_param("uninitcode", _CODE),
    query_param("standbyok", {"type": "boolean"}),
)
OPERATIONS = (
    Operation("GET", "/v1/sys/health", "200 when unsealed, 503 when sealed, 501 when not "
              "initialized; HEAD too. Vault's query overrides activecode, sealedcode, "
              "uninitcode, standbycode (200-599) and standbyok pick other codes.", None, health,
              response=Health, errors=(400, 501, 503), params=_HEALTH_PARAMS, head=True),
    Operation("GET", "/v1/sys/seal-status", "Sealed or not, and why.", None, seal_status,
              response=SealStatus, errors=()),
    Operation("POST", "/v1/sys/rotate-key", "New active barrier key; rewrap in background.",
              "sudo on sys/rotate-key", rotate_key, response=RotateKey, errors=(403,)),
    Operation("GET", "/v1/sys/key-status", "Key terms and rewrap progress.",
              "read on sys/key-status", key_status, response=KeyStatus, errors=(403,)),
    Operation("GET", "/v1/sys/leaders", "Each leader-only job (rotation scheduler, rewrap, "
              "token tidy, periodic scans, broker lease renewal): its storage lease, holder, "
              "since and until when (null when nobody holds it).", "read on sys/leaders",
              leaders_view, response=Leaders, errors=(403,)),
    Operation("GET", "/metrics", "Prometheus metrics (no secret data); OpenMetrics when "
              "Accept asks for application/openmetrics-text. 403 without a token that may "
              "read sys/metrics (metrics.require_token); 404 on the API port when "
              "metrics.listen serves them.", None, metrics, errors=(403, 404)),
    Operation("GET", "/v1/openapi.json", "This document.", None, openapi, errors=()),
)  # fmt: skip


def add_routes(app: web.Application) -> None:
    """Register the system routes."""
    add_operations(app, OPERATIONS)
