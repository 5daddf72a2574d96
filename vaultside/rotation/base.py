"""The rotation seam: a ``Target`` is one kind of credential holder (a store, a database, ...).

A rotation calls, in order, ``create_pending`` → ``set`` → ``test`` → ``finish``; on any
failure ``rollback`` (which must be idempotent and safe to call after a partial ``set`` or
after a crash). ``RotationContext.state`` is what a target needs to remember between steps;
it is journaled (encrypted by the barrier) so a restarted process can resume or roll back.

``Redelivery`` is how rotation tells whoever delivers secrets to running consumers that a
new version was promoted. Rotation defines it and never imports an implementation (the
volume plugin's ``vaultside.inject.redeliver.MountRefresher`` is one, ``propagate``'s
consumer registry another); wiring connects them (``RotationService.add_redelivery``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from vaultside.rotation.policy import RotationPolicy


@dataclass
class RotationContext:
    """One rotation in flight. ``repr`` never shows ``current`` or ``pending``."""

    path: str
    policy: RotationPolicy
    run_id: str
    # SECURITY: the old and new secret data; never logged, never in reprs.
    current: dict[str, str] | None = field(repr=False)
    pending: dict[str, str] = field(repr=False)
    base_version: int = 0
    state: dict[str, str] = field(default_factory=dict, repr=False)


class Target(Protocol):
    """Where a rotated secret is set, tested and finished. Every step may be retried."""

    kind: str

    async def create_pending(self, ctx: RotationContext) -> None:
        """Prepare: may adjust ``ctx.pending`` (e.g. choose the next role) and ``ctx.state``."""
        ...

    async def set(self, ctx: RotationContext) -> None:
        """Make the target accept ``ctx.pending`` (the current value may stop working)."""
        ...

    async def test(self, ctx: RotationContext) -> None:
        """Prove ``ctx.pending`` works against the target; raise if it does not."""
        ...

    async def finish(self, ctx: RotationContext) -> None:
        """Target-side clean-up after promotion (e.g. start the previous value's grace)."""
        ...

    async def rollback(self, ctx: RotationContext) -> None:
        """Undo ``set`` so ``ctx.current`` works again; idempotent."""
        ...


class RotationStepError(Exception):
    """A step failed; ``step`` names it. The message never contains a secret value."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
        self.message = message


class Redelivery(Protocol):
    """Told after a rotation promoted ``version`` of ``path``; must not raise for a consumer."""

    async def delivered(self, path: str, version: int) -> None:
        """Start getting the new version to consumers (returns without waiting for them)."""
        ...
