"""Target ``command``: a program the operator declared (``[rotation.targets.<name>]``).

For ``set``, ``test``, ``finish`` and ``rollback`` the program is run with
``VAULTSIDE_ROTATION_STEP`` and ``VAULTSIDE_ROTATION_PATH`` in its environment and a JSON
object on stdin: ``{"step", "path", "pending": {field: value}, "current": {...}|null}``.
Exit status 0 means the step worked. The value goes only through the pipe: never argv or
the environment (both are visible to other users in ``/proc``), never our logs.

Before every run the executable is re-hashed and checked against its pin; the process is
started from a sealed in-memory copy of exactly the bytes that were hashed
(``catalog.open_pinned``). Its environment is the two variables above plus only the server
variables the operator listed in ``env``.
"""

from __future__ import annotations

import asyncio
import os

from vaultside.errors import UpstreamError
from vaultside.rotation.base import RotationContext
from vaultside.rotation.catalog import CommandEntry, open_pinned
from vaultside.rotation.targets.handoff import HandoffTarget, step_body


def command_env(entry: CommandEntry, step: str, path: str) -> dict[str, str]:
    """The child's whole environment: the step, the path and the allow-listed names."""
    # SECURITY: none of the server's environment unless the operator named the variable.
    env = {name: os.environ[name] for name in entry.env if name in os.environ}
    env.update({"VAULTSIDE_ROTATION_STEP": step, "VAULTSIDE_ROTATION_PATH": path})
    return env


class CommandTarget(HandoffTarget):
    """Runs a declared, pinned program per step; its exit status is the step's result."""

    kind = "command"

    def __init__(self, entry: CommandEntry) -> None:
        self.entry = entry

    async def _call(self, step: str, ctx: RotationContext) -> None:
        entry = self.entry
        # SECURITY: the pin is checked before each run; a mismatch refuses (InvalidRequestError).
        fd = await asyncio.to_thread(open_pinned, entry)
        try:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *entry.argv,
                    executable=f"/proc/self/fd/{fd}",
                    pass_fds=(fd,),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                    env=command_env(entry, step, ctx.path),
                    cwd="/",
                )
            except OSError as exc:
                raise UpstreamError(f"cannot run target {entry.name!r}: {exc.strerror}") from None
        finally:
            os.close(fd)
        try:
            # SECURITY: the value travels only through the pipe.
            await asyncio.wait_for(proc.communicate(step_body(step, ctx)), entry.timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise UpstreamError(f"{step} command timed out after {entry.timeout:g}s") from None
        if proc.returncode != 0:
            raise UpstreamError(f"{step} command exited with status {proc.returncode}")
