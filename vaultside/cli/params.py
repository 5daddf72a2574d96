"""Click parameter types shared by commands: durations through the one shared parser."""

from __future__ import annotations

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
