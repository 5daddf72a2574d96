"""A prefix view: one ``StorageBackend`` confined to the keys under a prefix of another.

Like Vault's ``BarrierView``: wiring gives each service a view of the barrier at the prefix it
owns (the table is ``vaultside.wiring.keyspace``), and the service spells only its own layout
below it. The view passes the FULL key down (``prefix + key``), so over the barrier the stored
key and the AEAD AAD are exactly what a service writing the full key itself would produce:
existing data reads unchanged.

Lock names are confined the same way (``try_lock("scheduler")`` on the ``rotation/`` view takes
the lease ``rotation/scheduler``). ``open``/``close`` do nothing: the view does not own the
backend below it, whoever built that backend opens and closes it.

Errors callers should handle: ``InvalidRequestError`` for a key that would leave the view
(absolute, or with a ``..`` or ``.`` segment), plus whatever the backend below raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from vaultside.errors import InvalidRequestError
from vaultside.storage.base import Delete, LockInspector, Op, Put, Record, StorageBackend


@runtime_checkable
class StoredKeys(Protocol):
    """A backend that stores a key under another name below it (the barrier: ``logical/``)."""

    def stored_key(self, key: str) -> str:
        """The key as the layer below this one stores it."""
        ...


def check_relative(key: str, *, what: str = "storage key") -> str:
    """``key`` itself if it cannot leave a prefix: not absolute, no ``.``/``..`` segment."""
    # SECURITY: a view is the service's whole key space; ``..`` would reach a neighbour's.
    if key.startswith("/") or any(seg in (".", "..") for seg in key.split("/")):
        raise InvalidRequestError(f"{what} must be relative and must not contain . or ..")
    return key


class StorageView:
    """The keys of ``backend`` under ``prefix``, as a ``StorageBackend`` of their own."""

    def __init__(self, backend: StorageBackend, prefix: str) -> None:
        if not prefix.endswith("/") or prefix == "/":
            raise ValueError(f"a view prefix ends with '/' and is not empty: {prefix!r}")
        check_relative(prefix[:-1], what="view prefix")
        # A view of a view is one view of the innermost backend (one prefix, one hop).
        if isinstance(backend, StorageView):
            below: StorageBackend = backend.backend
            prefix = backend.prefix + prefix
        else:
            below = backend
        self._backend: StorageBackend = below
        self._prefix: str = prefix

    def __repr__(self) -> str:
        return f"StorageView({self._prefix!r} of {type(self._backend).__name__})"

    @property
    def prefix(self) -> str:
        """The prefix every key of this view is stored under (ends with ``/``)."""
        return self._prefix

    @property
    def backend(self) -> StorageBackend:
        """The backend below the view."""
        return self._backend

    def _full(self, key: str) -> str:
        if not key:
            raise InvalidRequestError("storage key must not be empty")
        return self._prefix + check_relative(key)

    def stored_key(self, key: str = "") -> str:
        """``key`` as finally stored (below the barrier, too): for routing change notices."""
        full = self._prefix + check_relative(key) if key else self._prefix
        if isinstance(self._backend, StoredKeys):
            return self._backend.stored_key(full)
        return full

    def view(self, prefix: str) -> StorageView:
        """A narrower view under this one."""
        return StorageView(self, prefix)

    async def open(self) -> None:
        """Nothing to open: the backend below belongs to whoever built it."""

    async def close(self) -> None:
        """Nothing to close (see ``open``)."""

    async def get(self, key: str) -> Record | None:
        """The record at ``key`` in this view."""
        return await self._backend.get(self._full(key))

    async def put(self, key: str, value: bytes, *, expect_revision: int | None = None) -> int:
        """Store ``value`` at ``key`` in this view."""
        return await self._backend.put(self._full(key), value, expect_revision=expect_revision)

    async def delete(self, key: str, *, expect_revision: int | None = None) -> bool:
        """Remove ``key`` from this view."""
        return await self._backend.delete(self._full(key), expect_revision=expect_revision)

    async def list(self, prefix: str, *, after: str = "", limit: int | None = None) -> list[str]:
        """Keys of this view starting with ``prefix``, relative to the view."""
        if prefix:
            check_relative(prefix, what="storage list prefix")
        keys = await self._backend.list(
            self._prefix + prefix, after=self._prefix + after if after else "", limit=limit
        )
        cut = len(self._prefix)
        return [k[cut:] for k in keys]

    async def write_batch(self, ops: Sequence[Op]) -> None:
        """Apply every op atomically, each key inside this view."""
        lowered: list[Op] = [
            Put(self._full(op.key), op.value, op.expect_revision)
            if isinstance(op, Put)
            else Delete(self._full(op.key), op.expect_revision)
            for op in ops
        ]
        await self._backend.write_batch(lowered)

    async def try_lock(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew the lease ``name`` of this view."""
        return await self._backend.try_lock(self._full(name), holder, ttl)

    async def unlock(self, name: str, holder: str) -> None:
        """Release the lease ``name`` of this view."""
        await self._backend.unlock(self._full(name), holder)

    async def lock_holder(self, name: str) -> tuple[str, float] | None:
        """Who holds the lease ``name`` of this view, if the backend can tell; else None."""
        if isinstance(self._backend, LockInspector):
            return await self._backend.lock_holder(self._full(name))
        return None
