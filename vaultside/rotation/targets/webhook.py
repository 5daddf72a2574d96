"""Target ``webhook``: each step is a JSON POST (same body as ``command``); 2xx = success.

Use ``https://`` for anything but loopback: the body carries the new value.
"""

from __future__ import annotations

import aiohttp

from vaultside.errors import UpstreamError, UpstreamUnavailableError
from vaultside.rotation.base import RotationContext
from vaultside.rotation.policy import WebhookTargetSpec
from vaultside.rotation.targets.handoff import HandoffTarget, step_body


class WebhookTarget(HandoffTarget):
    """POSTs each step to a URL."""

    kind = "webhook"

    def __init__(self, spec: WebhookTargetSpec) -> None:
        self.spec = spec

    async def _call(self, step: str, ctx: RotationContext) -> None:
        timeout = aiohttp.ClientTimeout(total=self.spec.timeout)
        headers = {"Content-Type": "application/json", "X-Vaultside-Rotation-Step": step}
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(self.spec.url, data=step_body(step, ctx), headers=headers) as resp,
            ):
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise UpstreamUnavailableError(
                f"{step} webhook unreachable: {type(exc).__name__}"
            ) from None
        if not 200 <= status < 300:
            raise UpstreamError(f"{step} webhook answered HTTP {status}")
