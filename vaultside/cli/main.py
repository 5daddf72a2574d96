"""``vaultside`` entry point: a click group; each command group lives in ``commands/``."""

from __future__ import annotations

import importlib

import click

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
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vaultside")
def cli() -> None:
    """vaultside: store, broker, inject, rotate and scan container secrets."""


for _name in COMMAND_MODULES:
    _module = importlib.import_module(f"vaultside.cli.commands.{_name}")
    cli.add_command(_module.cli)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="vaultside")
