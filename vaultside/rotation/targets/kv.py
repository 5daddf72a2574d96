"""Target ``kv``: the secret lives only in vaultside's own store.

Nothing outside needs changing: ``finish`` in the engine writes the new KV version, so every
step here is a no-op and rollback only has to discard the pending value (the engine does).
"""

from __future__ import annotations

from vaultside.rotation.base import RotationContext


class KvTarget:
    """vaultside's own store; the engine's promotion is the whole rotation."""

    kind = "kv"

    async def create_pending(self, ctx: RotationContext) -> None:
        """Nothing to prepare."""

    async def set(self, ctx: RotationContext) -> None:
        """Nothing to set outside the store."""

    async def test(self, ctx: RotationContext) -> None:
        """Nothing outside to test against."""

    async def finish(self, ctx: RotationContext) -> None:
        """Nothing to finish outside the store."""

    async def rollback(self, ctx: RotationContext) -> None:
        """Nothing was changed outside the store."""
