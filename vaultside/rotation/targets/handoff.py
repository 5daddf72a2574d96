"""Shared shape of the targets that hand each step to a system we don't know.

``command`` and ``webhook`` both send the same JSON document for every step and treat the
answer as the step's result; a subclass only says how one step is delivered (``_call``).
"""

from __future__ import annotations

import json

from vaultside.rotation.base import RotationContext


def step_body(step: str, ctx: RotationContext) -> bytes:
    """The JSON document a command or webhook receives for ``step``."""
    doc = {"step": step, "path": ctx.path, "pending": ctx.pending, "current": ctx.current}
    return json.dumps(doc).encode()


class HandoffTarget:
    """A target whose set/test/finish/rollback each deliver ``step_body`` once."""

    async def _call(self, step: str, ctx: RotationContext) -> None:
        """Deliver one step; raise a ``VaultsideError`` if it did not work."""
        raise NotImplementedError

    async def create_pending(self, ctx: RotationContext) -> None:
        """Nothing to prepare."""

    async def set(self, ctx: RotationContext) -> None:
        """Deliver step ``set``."""
        await self._call("set", ctx)

    async def test(self, ctx: RotationContext) -> None:
        """Deliver step ``test``."""
        await self._call("test", ctx)

    async def finish(self, ctx: RotationContext) -> None:
        """Deliver step ``finish``."""
        await self._call("finish", ctx)

    async def rollback(self, ctx: RotationContext) -> None:
        """Deliver step ``rollback``."""
        await self._call("rollback", ctx)
