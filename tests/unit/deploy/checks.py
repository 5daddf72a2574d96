"""Checks shared by the deploy tests: a command line parses, an env var is a real setting."""

from __future__ import annotations

import typing
import warnings
from collections.abc import Sequence
from pathlib import Path

import click
from pydantic import BaseModel

from vaultside.cli.main import cli
from vaultside.config.settings import Settings

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"


def parse_cli(args: Sequence[str]) -> list[str]:
    """Parse ``vaultside ARGS`` with the real click tree (nothing runs); the command path.

    Raises ``click.UsageError`` for an unknown command or option, or a bad option value.
    """
    with warnings.catch_warnings():
        # click 8.2 deprecates protected_args; in click 9 ``args`` alone holds the rest
        warnings.simplefilter("ignore", DeprecationWarning)
        return _parse(list(args))


def _parse(args: list[str]) -> list[str]:
    ctx = cli.make_context("vaultside", args)
    path: list[str] = []
    command: click.Command = cli
    rest = ctx.protected_args + ctx.args
    while isinstance(command, click.Group) and rest:
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        path.append(name)
        ctx = sub.make_context(name, rest, parent=ctx)
        command = sub
        rest = ctx.protected_args + ctx.args if isinstance(sub, click.Group) else []
    return path


def is_setting(env_name: str) -> bool:
    """Whether ``VAULTSIDE_SECTION__FIELD`` names a field of ``Settings`` (client vars too)."""
    if env_name in {"VAULTSIDE_ADDR", "VAULTSIDE_TOKEN", "VAULTSIDE_TOKEN_FILE"}:
        return True
    if not env_name.startswith("VAULTSIDE_"):
        return False
    parts = env_name.removeprefix("VAULTSIDE_").lower().split("__")
    model: type[BaseModel] = Settings
    i = 0
    while i < len(parts):
        field = model.model_fields.get(parts[i])
        if field is None:
            return False
        annotation = field.annotation
        if typing.get_origin(annotation) is dict and i + 2 < len(parts):
            annotation = typing.get_args(annotation)[1]  # brokers__<name>__<field>
            i += 1
        i += 1
        if i < len(parts):
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True
