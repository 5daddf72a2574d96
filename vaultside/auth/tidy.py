"""Periodic token tidy-up: reclaims the records of expired tokens, on one server at a time.

Expired tokens are refused whether or not their records are gone; without this loop they
would only pile up in storage. Every ``interval`` seconds each server tries to take (or
renew) the lease ``token-tidy`` of the token store's view; only its holder runs ``TokenStore.tidy``
(the election loop is ``vaultside.cluster.leader.LeaderJob``). ``TokenStore.tidy`` is safe
to run concurrently, so a lease that lapses during a long tidy costs duplicate work, never
correctness.

All time comes from the injected ``Clock``; ``tick`` is one step, which tests drive directly.
"""

from __future__ import annotations

import logging

from vaultside.auth.tokens import TokenStore
from vaultside.clock import Clock
from vaultside.cluster.leader import LeaderJob
from vaultside.storage.base import StorageBackend

log = logging.getLogger(__name__)

TIDY_LEASE = "token-tidy"


class TokenTidier(LeaderJob[int]):
    """A component that runs ``TokenStore.tidy`` every ``interval`` seconds on the leader."""

    job_name = "token-tidy"

    def __init__(
        self,
        tokens: TokenStore,
        storage: StorageBackend,
        *,
        clock: Clock,
        interval: float,
        holder: str | None = None,
        leaders: StorageBackend | None = None,
    ) -> None:
        super().__init__(
            storage, TIDY_LEASE, clock=clock, interval=interval, holder=holder, leaders=leaders
        )
        self.tokens = tokens
        self.removed_total = 0

    async def work(self) -> int:
        """Tidy once; the number of token records removed."""
        removed = await self.tokens.tidy()
        self.removed_total += removed
        if removed:
            log.info("expired tokens tidied", extra={"removed": removed})
        return removed
