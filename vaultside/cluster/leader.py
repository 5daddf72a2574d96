"""A periodic job that runs on one server at a time, elected through a storage lease.

Every ``interval`` seconds each server tries to take (or renew) the storage lease named by
the job; only its holder runs ``work``. The lease lasts two intervals, so if the holder dies
another server takes over within about three. Jobs must tolerate a lease that lapses during
a long run (duplicate work, never wrong results): the lease bounds how often, not whether.

All time comes from the injected ``Clock``; ``tick`` is one step, which tests drive directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from typing import Generic, TypeVar

from vaultside.clock import Clock
from vaultside.cluster import leaders
from vaultside.errors import SealedError, UpstreamUnavailableError
from vaultside.lifecycle import LoopTask, repeat
from vaultside.storage.base import StorageBackend

log = logging.getLogger(__name__)

T = TypeVar("T")


def default_holder() -> str:
    """A holder id unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaderJob(Generic[T]):
    """Base of leader-only periodic components; subclasses implement ``work``."""

    #: Short name used in logs and as the asyncio task name.
    job_name = "leader-job"

    def __init__(
        self,
        storage: StorageBackend,
        lease: str,
        *,
        clock: Clock,
        interval: float,
        holder: str | None = None,
        leaders: StorageBackend | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"{self.job_name} interval must be positive")
        self.storage = storage
        self.lease = lease
        #: Where "who leads since when" is recorded (``leaders.report``); None: metric only.
        self.leaders = leaders
        self.clock = clock
        self.interval = interval
        self.holder = holder or default_holder()
        self.leader = False
        self._loop = LoopTask(self.run, name=self.job_name)

    async def work(self) -> T:
        """One run of the job, on the leader only."""
        raise NotImplementedError

    def on_leadership(self, leader: bool) -> None:
        """Called on every tick with whether this process leads (e.g. to set a metric)."""

    def _lead(self, leader: bool) -> None:
        self.leader = leader
        self.on_leadership(leader)

    async def tick(self) -> T | None:
        """Take or renew the lease and run the job; its result, or None if not the leader."""
        if not await self.storage.try_lock(self.lease, self.holder, 2 * self.interval):
            self._lead(False)
            leaders.mark(self.job_name, self.holder, False)
            return None
        self._lead(True)
        await leaders.report(self.leaders, self.clock, self.job_name, self.holder, True)
        return await self.work()

    async def run(self) -> None:
        """Sleep an interval, tick, forever (cancel to stop); releases the lease on the way out."""
        try:
            await repeat(
                self.tick,
                pause=lambda: self.clock.sleep(self.interval),
                what="leader job",
                waiting=(SealedError, UpstreamUnavailableError),
                extra={"job": self.job_name},
                logger=log,
            )
        finally:
            if self.leader:
                self._lead(False)
                leaders.mark(self.job_name, self.holder, False)
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.storage.unlock(self.lease, self.holder))

    async def start(self) -> None:
        """Start the loop (the first run happens one interval after start)."""
        self._loop.start()

    async def close(self) -> None:
        """Stop the loop and release the lease. Idempotent."""
        await self._loop.close()
