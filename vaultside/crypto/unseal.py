"""The one unseal retry loop: call ``unseal`` until the root key is available.

Used by the API (``vaultside.api.app``: a server that starts sealed keeps trying in the
background) and by anything else that waits for a seal (e.g. a transit seal whose OpenBao is
down). Waits grow from ``first`` to at most ``interval`` with full jitter
(``vaultside.retry``), so replicas that failed together do not retry together.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from vaultside.clock import Clock
from vaultside.errors import SealedError
from vaultside.retry import Backoff

log = logging.getLogger(__name__)


async def unseal_until_ready(
    unseal: Callable[[], Awaitable[None]],
    clock: Clock,
    *,
    interval: float = 2.0,
    first: float | None = None,
    quiet: bool = False,
) -> None:
    """Call ``unseal`` until it stops raising ``SealedError`` (run it as a background task).

    ``quiet``: the caller logs the reasons itself (no ``still_sealed`` / ``unsealed`` lines).
    Any other exception ends the loop and propagates.
    """
    backoff = Backoff(base=first if first is not None else interval / 4, cap=interval)
    while True:
        try:
            await unseal()
        except SealedError as exc:
            delay = backoff.next()
            if not quiet:
                log.warning(
                    "still_sealed", extra={"reason": exc.message, "retry_in": round(delay, 3)}
                )
            await clock.sleep(delay)
        else:
            if not quiet:
                log.info("unsealed")
            return
