"""Running the app: TCP / TLS / unix-socket listeners and graceful shutdown of one process.

Several worker processes (``server.workers``) are supervised by ``vaultside.api.workers``;
each runs ``run_server`` with ``reuse_port`` so the kernel spreads connections over them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import ssl
import stat
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from vaultside import unix_socket
from vaultside.api.app import create_app
from vaultside.api.metrics_site import start_metrics_listener
from vaultside.api.protocol import GuardedAppRunner
from vaultside.api.state import SERVICES
from vaultside.config.settings import ServerSettings, Settings
from vaultside.errors import InvalidRequestError
from vaultside.lifecycle import STOP_SIGNALS, run_until_signal
from vaultside.services import Services

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 10.0


@dataclass(frozen=True)
class Bound:
    """Where the server ended up listening (the real port when 0 was asked for)."""

    urls: tuple[str, ...]
    # ``http://host:port/metrics`` of the dedicated metrics listener (``metrics.listen``).
    metrics_url: str | None = None

    @property
    def primary(self) -> str:
        """The first URL: what a client should use as ``VAULTSIDE_ADDR``."""
        return self.urls[0]


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8200`` for IPv6) → (host, port); ``InvalidRequestError`` if bad."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise InvalidRequestError(f"listen address {text!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - explicit empty host


def check_private_file(path: Path, setting: str) -> None:
    """``InvalidRequestError`` unless ``path`` is readable by its owner only (no group/other bits).

    A missing file is left to the loader, which reports it.
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & 0o077:
        # SECURITY: a private key others can read is as good as published; refuse to start.
        raise InvalidRequestError(
            f"{setting} {path} has mode {stat.S_IMODE(mode):04o}; "
            f"it must be readable by its owner only (chmod 600 {path})"
        )


def tls_context(cfg: ServerSettings, resolve: Callable[[Path], Path]) -> ssl.SSLContext | None:
    """A server TLS context from the configured files, or None for plain HTTP.

    With ``tls_client_ca_file`` clients may present a certificate signed by that CA; with
    ``tls_require_client_cert`` they must (the handshake fails otherwise).
    """
    if cfg.tls_cert_file is None and cfg.tls_key_file is None:
        if cfg.tls_client_ca_file is not None:
            raise InvalidRequestError("server.tls_client_ca_file needs tls_cert_file/tls_key_file")
        return None
    if cfg.tls_cert_file is None or cfg.tls_key_file is None:
        raise InvalidRequestError("set both server.tls_cert_file and server.tls_key_file")
    if cfg.tls_require_client_cert and cfg.tls_client_ca_file is None:
        raise InvalidRequestError("server.tls_require_client_cert needs tls_client_ca_file")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    cert, key = resolve(cfg.tls_cert_file), resolve(cfg.tls_key_file)
    check_private_file(key, "server.tls_key_file")
    try:
        ctx.load_cert_chain(cert, key)
        if cfg.tls_client_ca_file is not None:
            ctx.load_verify_locations(cafile=resolve(cfg.tls_client_ca_file))
            ctx.verify_mode = (
                ssl.CERT_REQUIRED if cfg.tls_require_client_cert else ssl.CERT_OPTIONAL
            )
    except (OSError, ssl.SSLError) as exc:
        raise InvalidRequestError(
            f"cannot load TLS files ({cert}, {key}, CA {cfg.tls_client_ca_file}): "
            f"{type(exc).__name__}"
        ) from None
    return ctx


def bind_unix(path: Path) -> socket.socket:
    """A listening unix socket at ``path`` (a stale socket file is replaced), mode 0660."""
    return unix_socket.bind_unix(path, 0o660)


async def start_sites(
    runner: web.AppRunner,
    settings: Settings,
    *,
    reuse_port: bool = False,
    unix_sock: socket.socket | None = None,
) -> Bound:
    """Start every configured listener on ``runner``; returns the URLs they answer on."""
    cfg = settings.server
    ctx = tls_context(cfg, settings.resolve)
    urls: list[str] = []
    if cfg.listen:
        host, port = parse_listen(cfg.listen)
        site = web.TCPSite(
            runner, host, port, ssl_context=ctx, reuse_port=reuse_port or None, backlog=1024
        )
        await site.start()
        # The real port (``0`` asks the kernel for a free one).
        real_port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
        shown = f"[{host}]" if ":" in host else host
        urls.append(f"{'https' if ctx else 'http'}://{shown}:{real_port}")
    if unix_sock is not None:
        await web.SockSite(runner, unix_sock).start()
        urls.append(f"unix://{unix_sock.getsockname()}")
    elif cfg.unix_socket is not None:
        await web.SockSite(runner, bind_unix(settings.resolve(cfg.unix_socket))).start()
        urls.append(f"unix://{settings.resolve(cfg.unix_socket)}")
    if not urls:
        raise InvalidRequestError("nothing to listen on: set server.listen or server.unix_socket")
    return Bound(tuple(urls))


class _Listeners:
    """The app's runner with every listener (and the metrics listener) as one component."""

    def __init__(
        self,
        app: web.Application,
        settings: Settings,
        *,
        reuse_port: bool,
        unix_sock: socket.socket | None,
        metrics_at: tuple[str, int] | None,
    ) -> None:
        self.settings = settings
        self.reuse_port = reuse_port
        self.unix_sock = unix_sock
        self.metrics_at = metrics_at
        self.app = app
        self.runner = GuardedAppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            header_read_timeout=settings.server.header_read_timeout,
            keepalive_timeout=settings.server.keepalive_timeout,
        )
        self.bound: Bound | None = None
        self._metrics_runner: web.AppRunner | None = None
        self._set_up = False

    async def start(self) -> None:
        """Set the app up (opens and unseals ``Services``) and bind every listener."""
        await self.runner.setup()
        self._set_up = True
        cfg = self.settings.server
        bound = await start_sites(
            self.runner, self.settings, reuse_port=self.reuse_port, unix_sock=self.unix_sock
        )
        log.info("listening", extra={"urls": ",".join(bound.urls)})
        if self.metrics_at is not None:
            self._metrics_runner, metrics_url = await start_metrics_listener(
                self.app,
                *self.metrics_at,
                reuse_port=self.reuse_port,
                header_read_timeout=cfg.header_read_timeout,
                keepalive_timeout=cfg.keepalive_timeout,
            )
            bound = dataclasses.replace(bound, metrics_url=metrics_url)
        self.bound = bound

    async def close(self) -> None:
        """Stop listening, finish requests, close the app (and ``Services``). Idempotent."""
        if not self._set_up:
            return
        self._set_up = False
        log.info("shutting down")
        metrics_runner, self._metrics_runner = self._metrics_runner, None
        try:
            if metrics_runner is not None:
                await metrics_runner.cleanup()
        finally:
            await self.runner.cleanup()
            cfg = self.settings.server
            if self.unix_sock is None and cfg.unix_socket is not None:
                unix_socket.remove_stale_socket(self.settings.resolve(cfg.unix_socket))


def check_settings(settings: Settings) -> None:
    """``InvalidRequestError`` for a bad listen address or TLS files, before anything opens."""
    if settings.server.listen:
        parse_listen(settings.server.listen)
    if settings.metrics.listen:
        parse_listen(settings.metrics.listen)
    tls_context(settings.server, settings.resolve)


async def run_server(
    services: Services,
    *,
    reuse_port: bool = False,
    unix_sock: socket.socket | None = None,
    on_ready: Callable[[Services, Bound], Awaitable[None]] | None = None,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop``), then shut down gracefully.

    ``services`` are built by the caller (``vaultside serve``, through ``vaultside.wiring``);
    ``on_ready`` runs once every listener is bound (e.g. to print the dev root token).
    """
    settings = services.settings
    # Configuration errors surface before anything is opened.
    check_settings(settings)
    metrics_at = parse_listen(settings.metrics.listen) if settings.metrics.listen else None
    app = create_app(services)
    listeners = _Listeners(
        app, settings, reuse_port=reuse_port, unix_sock=unix_sock, metrics_at=metrics_at
    )

    async def ready() -> None:
        if on_ready is not None and listeners.bound is not None:
            await on_ready(app[SERVICES], listeners.bound)

    await run_until_signal(
        [listeners], stop=stop, signals=STOP_SIGNALS if handle_signals else (), on_ready=ready
    )


def run(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` on uvloop when it is installed, else on the default loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(coro)
        return
    uvloop.run(coro)
