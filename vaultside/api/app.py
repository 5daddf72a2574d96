"""The aiohttp application: middlewares, routes and the lifecycles of what it owns.

``create_app`` takes already-built ``Services`` (``vaultside.services``, built by
``vaultside.wiring``); the app opens them on startup, unseals (retrying in the background
while the root key is unavailable) and closes them on shutdown.

Start-up order does not matter: a storage backend that cannot be reached yet (PostgreSQL
down) keeps the server sealed (health 503, reason "storage unavailable: ...") instead of
failing the start; the unseal loop (``vaultside.crypto.unseal``, the one retry loop) opens
it and unseals once it answers, backing off with full jitter so replicas that failed together
do not retry together. A configuration error (bad DSN) still fails the start.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from vaultside.api.clients import ClientResolver
from vaultside.api.metrics import ApiMetrics
from vaultside.api.middleware import MIDDLEWARES
from vaultside.api.openapi import served_document
from vaultside.api.routes import ROUTE_MODULES
from vaultside.api.routes.sys import rewrap_quietly
from vaultside.api.state import (
    AUDIT_STATE,
    BACKGROUND,
    CLIENTS,
    METRICS,
    OPENAPI_BODY,
    SEAL_STATE,
    SERVICES,
    AuditState,
    Background,
    SealState,
)
from vaultside.crypto.unseal import unseal_until_ready
from vaultside.errors import SealedError, UpstreamUnavailableError, VaultsideError
from vaultside.services import Services

log = logging.getLogger(__name__)

_UNSEAL_RETRY_MIN = 0.5
_UNSEAL_RETRY_MAX = 5.0


async def try_unseal(services: Services, state: SealState) -> bool:
    """One attempt to open storage (idempotent) and unseal; records the reason on failure.
    True once unsealed. Storage errors other than "unavailable" (a bad DSN) propagate."""
    state.attempts += 1
    try:
        await services.open()
    except UpstreamUnavailableError as exc:
        return _still_sealed(state, f"storage unavailable: {exc.message}")
    try:
        await services.barrier.unseal()
    except SealedError as exc:
        reason = exc.message
    except VaultsideError as exc:
        reason = f"{exc.code}: {exc.message}"
    else:
        state.sealed, state.reason = False, ""
        await services.start_components()
        return True
    return _still_sealed(state, reason)


def _still_sealed(state: SealState, reason: str) -> bool:
    if reason != state.reason:
        log.warning("still sealed", extra={"reason": reason})
    state.reason = reason
    return False


async def unseal_loop(services: Services, state: SealState, background: Background) -> None:
    """Retry unsealing with backoff until it works (e.g. a key file that appears later, or a
    database that comes up)."""

    async def attempt() -> None:
        try:
            unsealed = await try_unseal(services, state)
        except VaultsideError as exc:  # e.g. the database came back refusing our login
            unsealed = _still_sealed(state, f"{exc.code}: {exc.message}")
        if not unsealed:
            raise SealedError(state.reason)

    # ``try_unseal`` logs each new reason itself, so the shared loop stays quiet.
    await unseal_until_ready(
        attempt, services.clock, first=_UNSEAL_RETRY_MIN, interval=_UNSEAL_RETRY_MAX, quiet=True
    )
    log.info("unsealed", extra={"attempts": state.attempts})
    background.spawn(rewrap_quietly(services), "rewrap-resume")


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    state = app[SEAL_STATE]
    background = app[BACKGROUND]
    try:
        if await try_unseal(services, state):
            # Resume a rewrap an earlier process left unfinished (a no-op if none).
            background.spawn(rewrap_quietly(services), "rewrap-resume")
        else:
            log.warning("starting sealed; will keep trying", extra={"reason": state.reason})
            background.spawn(unseal_loop(services, state, background), "unseal")
        yield
    finally:
        await background.close()
        await services.close()


def create_app(services: Services) -> web.Application:
    """The API application over ``services`` (opened, unsealed and closed by the app)."""
    app = web.Application(
        middlewares=MIDDLEWARES,
        client_max_size=services.settings.server.max_body_bytes,
    )
    app[SERVICES] = services
    app[SEAL_STATE] = SealState()
    app[METRICS] = ApiMetrics()
    app[BACKGROUND] = Background()
    app[AUDIT_STATE] = AuditState()
    app[CLIENTS] = ClientResolver([str(n) for n in services.settings.server.trusted_proxies])
    for module in ROUTE_MODULES:
        module.add_routes(app)
    app[OPENAPI_BODY] = served_document()
    app.cleanup_ctx.append(_lifecycle)
    return app
