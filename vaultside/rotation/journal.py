"""The durable step journal: one record per secret with a rotation in flight.

Each step is written *before* it acts, through the barrier (so the pending value is
encrypted at rest like any secret). On start, ``RotationEngine.recover`` reads every entry:
an entry at ``finish`` is completed, anything earlier is rolled back and discarded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from vaultside.storage.base import StorageBackend

PREFIX = "journal/"  # in the rotation service's storage view
STEPS = ("pending", "set", "test", "finish")


@dataclass
class JournalEntry:
    """What a rotation had done when it was last journaled. ``repr`` hides the values."""

    path: str
    run_id: str
    step: str
    base_version: int
    started: float
    trigger: str
    # SECURITY: secret data; stored only through the barrier, never shown.
    pending: dict[str, str] = field(repr=False)
    current: dict[str, str] | None = field(default=None, repr=False)
    state: dict[str, str] = field(default_factory=dict, repr=False)
    # The policy the run started with, so recovery works even if the policy was changed.
    policy: dict[str, object] = field(default_factory=dict)

    def encode(self) -> bytes:
        """JSON bytes for storage."""
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> JournalEntry:
        """Parse stored bytes."""
        return cls(**json.loads(raw))


class Journal:
    """Reads and writes journal entries through a ``StorageBackend`` (the barrier)."""

    def __init__(self, storage: StorageBackend) -> None:
        self._storage = storage

    async def write(self, entry: JournalEntry) -> None:
        """Persist ``entry`` durably (the storage put returns after commit)."""
        await self._storage.put(PREFIX + entry.path, entry.encode())

    async def get(self, path: str) -> JournalEntry | None:
        """The entry for ``path``, if a rotation is in flight."""
        rec = await self._storage.get(PREFIX + path)
        return None if rec is None else JournalEntry.decode(rec.value)

    async def discard(self, path: str) -> None:
        """Remove the entry (and with it the pending value)."""
        await self._storage.delete(PREFIX + path)

    async def paths(self) -> list[str]:
        """Every secret path with an entry."""
        keys = await self._storage.list(PREFIX)
        return [k[len(PREFIX) :] for k in keys]
