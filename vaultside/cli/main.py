"""``vaultside`` entry point: a click group; each command group lives in ``commands/``."""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import sys
from pathlib import Path

import click

from vaultside.cli.reference import reference_command

# Each entry is a module under vaultside.cli.commands exposing ``cli``; add one line per group.
COMMAND_MODULES: tuple[str, ...] = (
    "secret",
    "token",
    "policy",
    "audit",
    "serve",
    "operator",
    "plugin",
    "sidecar",
    "scan",
    "broker",
    "rotation",
    "completion",
    "jwt",
)


class LazyGroup(click.Group):
    """Imports a command's module only when it is used (the command is named like its module).

    ``vaultside secret get`` then loads the HTTP client, not the server, scanner and Docker
    code: about 0.25 s instead of 0.8 s per invocation.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMAND_MODULES and cmd_name not in self.commands:
            module = importlib.import_module(f"vaultside.cli.commands.{cmd_name}")
            self.add_command(module.cli, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vaultside")
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="VAULTSIDE_CONFIG",
    help="TOML settings file (env VAULTSIDE_CONFIG; default ./vaultside.toml).",
)
def cli(config: Path | None) -> None:
    """vaultside: store, broker, inject, rotate and scan container secrets.

    Output formats, exit codes and the client environment: docs/cli.md.

    \b
    Example:
      VAULTSIDE_ADDR=https://vault.internal:8200 vaultside secret get app/db
    """
    if config is not None:
        # Through the environment, so `serve --workers N` processes read the same file.
        os.environ["VAULTSIDE_CONFIG"] = str(config.absolute())


cli.add_command(reference_command)


_fast_exit = False


def skip_teardown() -> None:
    """Let the console script end without the interpreter's teardown (~15 ms: module
    finalisation; atexit handlers still run) once a command has written everything; for
    short commands (``scan``).

    Only ``main`` honours it (tests call ``cli`` in-process), after flushing stdout and stderr.
    """
    global _fast_exit
    _fast_exit = True


def main() -> None:
    """Console-script entry point."""
    try:
        cli(prog_name="vaultside")
    except SystemExit as exc:
        if not _fast_exit or not (exc.code is None or isinstance(exc.code, int)):
            raise
        atexit._run_exitfuncs()  # what atexit promises still happens (logging's flush, ...)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to keep
                stream.flush()
        os._exit(exc.code or 0)
