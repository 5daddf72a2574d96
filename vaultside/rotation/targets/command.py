"""Target ``command``: a program that knows the system we don't.

For ``set``, ``test``, ``finish`` and ``rollback`` the program is run with
``VAULTSIDE_ROTATION_STEP`` and ``VAULTSIDE_ROTATION_PATH`` in its environment and a JSON
object on stdin: ``{"step", "path", "pending": {field: value}, "current": {...}|null}``.
Exit status 0 means the step worked. The value goes only through the pipe: never argv or
the environment (both are visible to other users in ``/proc``), never our logs.
"""

from __future__ import annotations

import asyncio
import os

from vaultside.errors import UpstreamError
from vaultside.rotation.base import RotationContext
from vaultside.rotation.policy import CommandTargetSpec
from vaultside.rotation.targets.handoff import HandoffTarget, step_body


class CommandTarget(HandoffTarget):
    """Runs a program per step; its exit status is the step's result."""

    kind = "command"

    def __init__(self, spec: CommandTargetSpec) -> None:
        self.spec = spec

    async def _call(self, step: str, ctx: RotationContext) -> None:
        env = dict(os.environ)
        env.update({"VAULTSIDE_ROTATION_STEP": step, "VAULTSIDE_ROTATION_PATH": ctx.path})
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.spec.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                env=env,
            )
        except OSError as exc:
            raise UpstreamError(f"cannot run {self.spec.argv[0]}: {exc.strerror}") from None
        try:
            # SECURITY: the value travels only through the pipe.
            await asyncio.wait_for(proc.communicate(step_body(step, ctx)), self.spec.timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise UpstreamError(f"{step} command timed out after {self.spec.timeout:g}s") from None
        if proc.returncode != 0:
            raise UpstreamError(f"{step} command exited with status {proc.returncode}")
