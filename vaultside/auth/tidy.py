"""Periodic token tidy-up: reclaims the records of expired tokens, on one server at a time.

Expired tokens are refused whether or not their records are gone; without this loop they
would only pile up in storage. Every ``interval`` seconds each server tries to take (or
renew) the storage lease ``auth/token-tidy``; only its holder runs ``TokenStore.tidy``.
The lease lasts two intervals, so if the holder dies another server takes over within
about three. ``TokenStore.tidy`` is safe to run concurrently, so a lease that lapses during
a long tidy costs duplicate work, never correctness.

All time comes from the injected ``Clock``; ``tick`` is one step, which tests drive directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid

from vaultside.auth.tokens import TokenStore
from vaultside.clock import Clock
from vaultside.errors import SealedError, UpstreamUnavailableError
from vaultside.storage.base import StorageBackend

log = logging.getLogger(__name__)

TIDY_LEASE = "auth/token-tidy"


class TokenTidier:
    """A component that runs ``TokenStore.tidy`` every ``interval`` seconds on the leader."""

    def __init__(
        self,
        tokens: TokenStore,
        storage: StorageBackend,
        *,
        clock: Clock,
        interval: float,
        holder: str | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("tidy interval must be positive")
        self.tokens = tokens
        self.storage = storage
        self.clock = clock
        self.interval = interval
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.leader = False
        self.removed_total = 0
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> int | None:
        """Take or renew the lease and tidy; the number removed, or None if not the leader."""
        if not await self.storage.try_lock(TIDY_LEASE, self.holder, 2 * self.interval):
            self.leader = False
            return None
        self.leader = True
        removed = await self.tokens.tidy()
        self.removed_total += removed
        if removed:
            log.info("expired tokens tidied", extra={"removed": removed})
        return removed

    async def run(self) -> None:
        """Sleep an interval, tick, forever (cancel to stop); releases the lease on the way out."""
        try:
            while True:
                await self.clock.sleep(self.interval)
                try:
                    await self.tick()
                except (SealedError, UpstreamUnavailableError) as exc:
                    log.warning("token tidy waiting", extra={"error_type": type(exc).__name__})
                except Exception as exc:
                    log.error("token tidy failed", extra={"error_type": type(exc).__name__})
        finally:
            if self.leader:
                self.leader = False
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.storage.unlock(TIDY_LEASE, self.holder))

    async def start(self) -> None:
        """Start the loop (the first tidy runs one interval after start)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="token-tidy")

    async def close(self) -> None:
        """Stop the loop and release the lease. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
