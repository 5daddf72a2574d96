"""HTTP readiness for the sidecar: ``GET /ready`` is 200 once every file is rendered, else 503."""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web

READY_EVENT = web.AppKey("ready_event", asyncio.Event)


async def _ready(request: web.Request) -> web.Response:
    ready = request.app[READY_EVENT].is_set()
    return web.json_response({"ready": ready}, status=200 if ready else 503)


class ReadinessServer:
    """Serves the state of ``ready`` on ``host:port`` (port 0 picks a free one)."""

    def __init__(self, ready: asyncio.Event, host: str, port: int) -> None:
        self.ready, self.host, self.port = ready, host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen; ``port`` is updated to the bound port."""
        app = web.Application()
        app[READY_EVENT] = self.ready
        app.router.add_get("/ready", _ready)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.create_server((self.host, self.port), reuse_port=False)
        self.port = int(sock.getsockname()[1])
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
