"""The volume plugin inside ``vaultside serve`` (``inject.plugin_in_server = true``).

The same plugin and re-delivery loop as ``vaultside plugin``, started as a server component
once the barrier is unsealed and stopped on shutdown. Each role still resolves through this
server's HTTP API (``/v1/resolve``) with its own token, so the policy for that token decides
what a container may receive, exactly as with a separate plugin process.

The API address comes from ``inject.server_addr`` or, if unset, from ``server.unix_socket``
or ``server.listen`` (a wildcard host is reached on loopback; ``https`` when TLS is on, and
then ``VAULTSIDE_CACERT`` and friends from the environment apply as for any client).
One process only: with ``server.workers > 1`` it is refused (run ``vaultside plugin``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping

from vaultside.clock import Clock
from vaultside.config.settings import Settings
from vaultside.errors import InvalidRequestError
from vaultside.inject.plugin import PluginServer
from vaultside.inject.redeliver import MountRefresher
from vaultside.inject.runtime import plugin_running


def server_api_env(settings: Settings, env: Mapping[str, str]) -> dict[str, str]:
    """Client environment (``VAULTSIDE_ADDR``/``VAULTSIDE_SOCKET``) that reaches this server."""
    out = dict(env)
    out.pop("VAULTSIDE_SOCKET", None)
    cfg = settings.server
    if settings.inject.server_addr:
        out["VAULTSIDE_ADDR"] = settings.inject.server_addr
        return out
    scheme = "https" if cfg.tls_cert_file is not None else "http"
    if cfg.unix_socket is not None:
        out["VAULTSIDE_SOCKET"] = str(settings.resolve(cfg.unix_socket))
        out["VAULTSIDE_ADDR"] = f"{scheme}://localhost"
        return out
    host, sep, port = cfg.listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or int(port) == 0:
        raise InvalidRequestError(
            "inject.plugin_in_server needs a fixed server listen port (server.listen)"
            " or inject.server_addr"
        )
    if host in ("", "0.0.0.0"):  # noqa: S104 - a wildcard bind is reached on loopback
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    shown = f"[{host}]" if ":" in host else host
    out["VAULTSIDE_ADDR"] = f"{scheme}://{shown}:{port}"
    return out


class EmbeddedPlugin:
    """A server component running the volume plugin and its re-delivery loop."""

    def __init__(
        self, settings: Settings, *, clock: Clock, env: Mapping[str, str] | None = None
    ) -> None:
        if settings.server.workers > 1:
            raise InvalidRequestError(
                "inject.plugin_in_server needs server.workers = 1 (or run `vaultside plugin`)"
            )
        if settings.inject.roles_file is None:
            raise InvalidRequestError(
                "inject.plugin_in_server needs inject.roles_file (which containers get what)"
            )
        self.settings = settings
        self.clock = clock
        self.env = server_api_env(settings, os.environ if env is None else env)
        self.server: PluginServer | None = None
        self.refresher: MountRefresher | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen on the plugin socket and start re-delivery."""
        if self._stack is not None:
            return
        stack = contextlib.AsyncExitStack()
        try:
            server, engine = await stack.enter_async_context(
                plugin_running(self.settings, env=self.env)
            )
        except BaseException:
            await stack.aclose()
            raise
        self._stack, self.server = stack, server
        self.refresher = MountRefresher(
            server.manager,
            engine,
            clock=self.clock,
            interval=self.settings.rotation.redeliver_interval,
        )
        self._task = asyncio.create_task(self.refresher.run(), name="redeliver")

    async def delivered(self, path: str, version: int) -> None:
        """Rotation hook (``vaultside.rotation.base.Redelivery``): re-deliver now if running."""
        if self.refresher is not None:
            await self.refresher.delivered(path, version)

    async def close(self) -> None:
        """Stop re-delivery, then the plugin (mounted volumes stay; state is on disk)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.refresher is not None:
            await self.refresher.close()
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
