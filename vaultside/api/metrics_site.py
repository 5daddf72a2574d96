"""The dedicated metrics listener (``metrics.listen``): ``/metrics`` and nothing else.

It lets a NetworkPolicy or firewall admit Prometheus to one port without opening the API.
The listener's app shares the API app's state (services, seal state, metrics, audit state,
client resolver) and runs the same middleware stack, so ``metrics.require_token``, the
throttle and auditing behave exactly as on the API port. No TLS: put it on loopback or a
pod-internal address and let the scraper reach it over the cluster network (docs/operations.md).
"""

from __future__ import annotations

import logging

from aiohttp import web

from vaultside.api.middleware import MIDDLEWARES
from vaultside.api.protocol import GuardedAppRunner
from vaultside.api.routes.sys import metrics
from vaultside.api.state import (
    AUDIT_STATE,
    CLIENTS,
    METRICS,
    METRICS_LISTENER,
    SEAL_STATE,
    SERVICES,
)

log = logging.getLogger(__name__)


def make_metrics_app(api: web.Application) -> web.Application:
    """An app serving ``GET /metrics`` with ``api``'s state."""
    app = web.Application(middlewares=MIDDLEWARES, client_max_size=1024)
    app[SERVICES] = api[SERVICES]
    app[SEAL_STATE] = api[SEAL_STATE]
    app[METRICS] = api[METRICS]
    app[AUDIT_STATE] = api[AUDIT_STATE]
    app[CLIENTS] = api[CLIENTS]
    app[METRICS_LISTENER] = True
    app.router.add_get("/metrics", metrics, allow_head=False)
    return app


async def start_metrics_listener(
    api: web.Application,
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    header_read_timeout: float,
    keepalive_timeout: float,
) -> tuple[web.AppRunner, str]:
    """Listen on ``host:port`` (``metrics.listen``); returns (runner, URL of /metrics).

    The connections get the API port's guards (header-read deadline, keep-alive timeout).
    """
    runner = GuardedAppRunner(
        make_metrics_app(api),
        access_log=None,
        handle_signals=False,
        header_read_timeout=header_read_timeout,
        keepalive_timeout=keepalive_timeout,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    real_port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{real_port}/metrics"
    log.info("metrics listening", extra={"url": url})
    return runner, url
