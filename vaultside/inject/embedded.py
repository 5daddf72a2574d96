"""The volume plugin and its re-delivery loop as one component.

``vaultside plugin`` runs it until a signal; ``vaultside serve`` (``inject.plugin_in_server =
true``) starts it once the barrier is unsealed and closes it on shutdown. Both are wired by
``vaultside.wiring.plugin.plugin_component``; this module only runs what it is handed.

Each role resolves through a vaultside server's HTTP API (``/v1/resolve``) with its own token,
so the policy for that token decides what a container may receive. ``env`` names that server
(``VAULTSIDE_ADDR`` / ``VAULTSIDE_SOCKET``): the configured one for ``vaultside plugin``; in
``serve`` the server itself, from ``inject.server_addr`` or, if unset, ``server.unix_socket``
or ``server.listen`` (a wildcard host is reached on loopback; ``https`` when TLS is on, and
then ``VAULTSIDE_CACERT`` and friends from the environment apply as for any client). In
``serve`` one process only: with ``server.workers > 1`` it is refused (run ``vaultside plugin``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager

from vaultside.clock import Clock
from vaultside.inject.docker_api import DockerEngine
from vaultside.inject.plugin import PluginServer
from vaultside.inject.redeliver import MountRefresher
from vaultside.lifecycle import LoopTask

#: Opens the plugin (listening on its socket) for the duration of the block.
PluginOpener = Callable[
    [Mapping[str, str]], AbstractAsyncContextManager[tuple[PluginServer, DockerEngine]]
]


class EmbeddedPlugin:
    """A component running the volume plugin and its re-delivery loop."""

    def __init__(
        self,
        open_plugin: PluginOpener,
        *,
        env: Mapping[str, str],
        clock: Clock,
        interval: float,
    ) -> None:
        self.open_plugin = open_plugin
        self.env = dict(env)
        self.clock = clock
        self.interval = interval
        self.server: PluginServer | None = None
        self.refresher: MountRefresher | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._loop: LoopTask | None = None

    async def start(self) -> None:
        """Listen on the plugin socket and start re-delivery."""
        if self._stack is not None:
            return
        stack = contextlib.AsyncExitStack()
        try:
            server, engine = await stack.enter_async_context(self.open_plugin(self.env))
        except BaseException:
            await stack.aclose()
            raise
        self._stack, self.server = stack, server
        # Rotated secrets reach running containers: re-render changed files, run reload actions.
        self.refresher = MountRefresher(
            server.manager, engine, clock=self.clock, interval=self.interval
        )
        self._loop = LoopTask(self.refresher.run, name="redeliver")
        self._loop.start()

    async def delivered(self, path: str, version: int) -> None:
        """Rotation hook (``vaultside.rotation.base.Redelivery``): re-deliver now if running."""
        if self.refresher is not None:
            await self.refresher.delivered(path, version)

    async def close(self) -> None:
        """Stop re-delivery, then the plugin (mounted volumes stay; state is on disk)."""
        loop, self._loop = self._loop, None
        if loop is not None:
            await loop.close()
        if self.refresher is not None:
            await self.refresher.close()
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
