"""An in-memory ``StorageBackend``: the real contract (revisions, atomic batches, expiring
leases), nothing durable. For tests and for trying things out; it passes the conformance suite.

Every call yields to the event loop once, so concurrent callers interleave as they would
against a real backend (``interleave=False`` turns that off, for tests that step a fake clock
and expect each pass of a background loop to finish within one step).
Revisions come from one counter and are never reused. Lease expiry follows the injected
``Clock``. ``close`` keeps the data: reopening the same instance is
"restarting over the same data".
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from vaultside.clock import Clock, SystemClock
from vaultside.errors import ConflictError
from vaultside.storage.base import Delete, Op, Put, Record


class MemoryStorage:
    """Dict-backed storage with global revisions, atomic batches and leases."""

    def __init__(self, *, clock: Clock | None = None, interleave: bool = True) -> None:
        self.data: dict[str, Record] = {}
        self._clock: Clock = clock or SystemClock()
        self._interleave = interleave
        self._rev = 0
        self._locks: dict[str, tuple[str, float]] = {}  # name -> (holder, expires)

    def __repr__(self) -> str:
        return f"MemoryStorage({len(self.data)} keys)"

    async def _turn(self) -> None:
        if self._interleave:
            await asyncio.sleep(0)

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to release; the data stays (see the module docstring)."""

    def _check(self, key: str, expect: int | None) -> None:
        current = self.data[key].revision if key in self.data else 0
        if expect is not None and current != expect:
            raise ConflictError(f"revision mismatch at {key!r}: expected {expect}")

    def _put(self, key: str, value: bytes) -> int:
        self._rev += 1
        self.data[key] = Record(bytes(value), self._rev)
        return self._rev

    async def get(self, key: str) -> Record | None:
        """The record at ``key``, or None."""
        await self._turn()
        return self.data.get(key)

    async def put(self, key: str, value: bytes, *, expect_revision: int | None = None) -> int:
        """Store ``value``; ``ConflictError`` if ``expect_revision`` does not match."""
        await self._turn()
        self._check(key, expect_revision)
        return self._put(key, value)

    async def delete(self, key: str, *, expect_revision: int | None = None) -> bool:
        """Remove ``key``; True if it existed."""
        await self._turn()
        self._check(key, expect_revision)
        return self.data.pop(key, None) is not None

    async def list(self, prefix: str, *, after: str = "", limit: int | None = None) -> list[str]:
        """Keys starting with ``prefix``, sorted by code point, strictly after ``after``."""
        await self._turn()
        keys = sorted(k for k in self.data if k.startswith(prefix) and k > after)
        return keys if limit is None else keys[:limit]

    async def write_batch(self, ops: Sequence[Op]) -> None:
        """Check every op first (in order, as if applied), then apply them all."""
        await self._turn()
        staged: dict[str, int] = {}  # key -> revision after the ops so far (-1: a new one)
        for op in ops:
            if op.key in staged:
                current = staged[op.key]
            else:
                current = self.data[op.key].revision if op.key in self.data else 0
            if op.expect_revision is not None and current != op.expect_revision:
                raise ConflictError(
                    f"revision mismatch at {op.key!r}: expected {op.expect_revision}"
                )
            staged[op.key] = -1 if isinstance(op, Put) else 0
        for op in ops:
            if isinstance(op, Put):
                self._put(op.key, op.value)
            else:
                assert isinstance(op, Delete)
                self.data.pop(op.key, None)

    async def try_lock(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew lease ``name``; True if ``holder`` holds it afterwards."""
        await self._turn()
        now = self._clock.now()
        current = self._locks.get(name)
        if current is None or current[0] == holder or current[1] <= now:
            self._locks[name] = (holder, now + ttl)
            return True
        return False

    async def lock_holder(self, name: str) -> tuple[str, float] | None:
        """(holder, expires) of the unexpired lease ``name``, or None."""
        current = self._locks.get(name)
        return current if current is not None and current[1] > self._clock.now() else None

    async def unlock(self, name: str, holder: str) -> None:
        """Release lease ``name`` if ``holder`` holds it."""
        await self._turn()
        if self._locks.get(name, ("", 0.0))[0] == holder:
            del self._locks[name]
