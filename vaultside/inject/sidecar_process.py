"""``vaultside sidecar`` as one component: what the process holds and the order it lets go.

``start`` starts the readiness probe (``--ready-http``); ``run`` is the process's main work
(one render with ``once``, else render and keep fresh); ``close`` (idempotent) removes the
readiness file, stops the probe, ends the login session, then closes the connections it was
handed (the API client, the Docker engine). Built by ``vaultside.wiring.sidecar``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from vaultside.inject.readiness import ReadinessServer
from vaultside.inject.sidecar import Sidecar


class Closeable(Protocol):
    """A connection (pool) to let go of."""

    async def close(self) -> None:
        """Close it."""
        ...


class SidecarProcess:
    """A ``Sidecar`` with its probe and connections; see the module docstring."""

    def __init__(
        self,
        sidecar: Sidecar,
        *,
        once: bool,
        probe: ReadinessServer | None = None,
        resources: Sequence[Closeable] = (),
    ) -> None:
        self.sidecar = sidecar
        self.once = once
        self.probe = probe
        self.resources = list(resources)
        self._closed = False

    async def start(self) -> None:
        """Start the readiness probe (it answers 503 until the first render)."""
        if self.probe is not None:
            await self.probe.start()

    async def run(self) -> None:
        """Render once (``once``), or render and keep the files fresh until cancelled."""
        if self.once:
            await self.sidecar.start()
        else:
            await self.sidecar.run()

    async def close(self) -> None:
        """Let go of everything, in order (the rendered files stay for the app)."""
        if self._closed:
            return
        self._closed = True
        if not self.once:
            self.sidecar.stop_cleanup()
        if self.probe is not None:
            await self.probe.stop()
        if self.sidecar.auth is not None:
            await self.sidecar.auth.close()
        for resource in self.resources:
            await resource.close()
