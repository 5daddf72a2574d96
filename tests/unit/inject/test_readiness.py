"""Sidecar HTTP readiness."""

from __future__ import annotations

import asyncio

import aiohttp

from vaultside.inject.readiness import ReadinessServer


async def test_ready_flips_from_503_to_200() -> None:
    ready = asyncio.Event()
    server = ReadinessServer(ready, "127.0.0.1", 0)
    await server.start()
    try:
        assert server.port > 0
        async with aiohttp.ClientSession() as s:
            url = f"http://127.0.0.1:{server.port}/ready"
            async with s.get(url) as resp:
                assert resp.status == 503 and await resp.json() == {"ready": False}
            ready.set()
            async with s.get(url) as resp:
                assert resp.status == 200 and await resp.json() == {"ready": True}
    finally:
        await server.stop()
