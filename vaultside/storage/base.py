"""The storage seam: untrusted durable bytes keyed by path, with revisions and locks.

Keys are ``/``-separated strings made by vaultside itself (never raw user input), e.g.
``kv/meta/app/db`` or ``kv/data/app/db/3``. Every record carries a ``revision``: a positive
integer that changes on each put, so callers can do compare-and-set without comparing
bytes. ``expect_revision=0`` means "must not exist yet".

Implementations translate their driver's exceptions: a conflict raises ``ConflictError``,
an unreachable database raises ``UpstreamUnavailableError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Record:
    """One stored value and the revision it was read at."""

    value: bytes
    revision: int


@dataclass(frozen=True, slots=True)
class Put:
    """A put inside a batch; ``expect_revision`` as in ``StorageBackend.put``."""

    key: str
    value: bytes
    expect_revision: int | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    """A delete inside a batch; ``expect_revision`` as in ``StorageBackend.delete``."""

    key: str
    expect_revision: int | None = None


Op = Put | Delete


@runtime_checkable
class StorageBackend(Protocol):
    """Durable key/value bytes. All methods are safe to call concurrently.

    Errors callers should handle: ``ConflictError`` (a revision precondition failed),
    ``UpstreamUnavailableError`` (the backend is down; the request should fail with 503).
    """

    async def open(self) -> None:
        """Connect, create or migrate the schema. Idempotent."""
        ...

    async def close(self) -> None:
        """Release connections. Idempotent."""
        ...

    async def get(self, key: str) -> Record | None:
        """The record at ``key``, or None."""
        ...

    async def put(self, key: str, value: bytes, *, expect_revision: int | None = None) -> int:
        """Store ``value`` durably and return the new revision.

        With ``expect_revision`` set, the put only happens if the current revision equals
        it (0 = key absent); otherwise ``ConflictError``.
        """
        ...

    async def delete(self, key: str, *, expect_revision: int | None = None) -> bool:
        """Remove ``key``; True if it existed. Revision check as in ``put``."""
        ...

    async def list(self, prefix: str, *, after: str = "", limit: int | None = None) -> list[str]:
        """Keys starting with ``prefix``, sorted, strictly greater than ``after``."""
        ...

    async def write_batch(self, ops: Sequence[Op]) -> None:
        """Apply every op atomically: all of them or, on any failed check, none."""
        ...

    async def try_lock(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew the lease ``name`` for ``holder`` for ``ttl`` seconds.

        True if ``holder`` holds it afterwards. A lease that expired may be taken by anyone.
        """
        ...

    async def unlock(self, name: str, holder: str) -> None:
        """Release the lease if ``holder`` holds it."""
        ...


@runtime_checkable
class LockInspector(Protocol):
    """A backend that can say who holds a lease (for ``GET /v1/sys/leaders``)."""

    async def lock_holder(self, name: str) -> tuple[str, float] | None:
        """(holder, expires) of the unexpired lease ``name``, or None if nobody holds it."""
        ...
