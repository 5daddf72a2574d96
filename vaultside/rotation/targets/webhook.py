"""Target ``webhook``: a URL the operator declared; each step is a JSON POST, 2xx = success.

The body is the same as ``command``'s and carries the new value, so: the URL, its CA bundle
and whether plain http is allowed (loopback only) come from server configuration
(``catalog.WebhookEntry``), never from a caller. Redirects are never followed: a 3xx is a
failed step, and the body is never re-sent elsewhere.
"""

from __future__ import annotations

import asyncio
import ssl

import aiohttp

from vaultside.errors import UpstreamError, UpstreamUnavailableError
from vaultside.rotation.base import RotationContext
from vaultside.rotation.catalog import WebhookEntry
from vaultside.rotation.targets.handoff import HandoffTarget, step_body


class WebhookTarget(HandoffTarget):
    """POSTs each step to a declared URL."""

    kind = "webhook"

    def __init__(self, entry: WebhookEntry) -> None:
        self.entry = entry

    def _ssl(self) -> ssl.SSLContext | bool:
        if self.entry.ca_file is None:
            return True  # the system's trust store, hostname checked
        return ssl.create_default_context(cafile=str(self.entry.ca_file))

    async def _call(self, step: str, ctx: RotationContext) -> None:
        entry = self.entry
        timeout = aiohttp.ClientTimeout(total=entry.timeout)
        headers = {"Content-Type": "application/json", "X-Vaultside-Rotation-Step": step}
        tls = await asyncio.to_thread(self._ssl)  # reads the CA file: off the event loop
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout, trust_env=False) as session,
                session.post(
                    entry.url,
                    data=step_body(step, ctx),
                    headers=headers,
                    # SECURITY: a redirect must not carry the value to a location nobody declared.
                    allow_redirects=False,
                    ssl=tls,
                ) as resp,
            ):
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, OSError, ssl.SSLError) as exc:
            raise UpstreamUnavailableError(
                f"{step} webhook unreachable: {type(exc).__name__}"
            ) from None
        if 300 <= status < 400:
            raise UpstreamError(
                f"{step} webhook answered HTTP {status} (redirects are not followed)"
            )
        if not 200 <= status < 300:
            raise UpstreamError(f"{step} webhook answered HTTP {status}")
