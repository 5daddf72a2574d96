"""Input shared by commands: click parameter types (durations through the one shared parser)
and JSON-or-TOML documents."""

from __future__ import annotations

import json
import tomllib
from typing import Any

import click

from vaultside.durations import parse_duration
from vaultside.errors import InvalidRequestError


class DurationParam(click.ParamType[float]):
    """Seconds or a duration (``0.25``, ``10m``, ``1h30m``), see ``vaultside.durations``."""

    name = "duration"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = DurationParam()


def config_duration(value: object, key: str) -> float:
    """A duration from a config file; ``InvalidRequestError`` naming ``key`` (not the value)."""
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise InvalidRequestError(f"{key}: {exc}") from None


def parse_document(text: str, source: str) -> Any:
    """A JSON or TOML document; exits 2 naming ``source`` if it is neither."""
    from vaultside.cli.render import EXIT_INVALID, fail

    try:
        return json.loads(text)
    except ValueError:
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            fail(f"{source} is neither JSON nor TOML: {exc}", EXIT_INVALID)
