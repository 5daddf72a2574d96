"""Durations on the command line and in the sidecar's config file use the shared parser."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from vaultside.cli.main import cli
from vaultside.cli.params import DURATION, config_duration
from vaultside.errors import InvalidRequestError


def test_sidecar_interval_takes_a_duration() -> None:
    result = CliRunner().invoke(cli, ["sidecar", "--interval", "1m", "--refresh", "1h30m"])
    # Past option parsing: what is missing now is the output directory.
    assert result.exit_code == 2 and "--dir" in result.output, result.output
    result = CliRunner().invoke(cli, ["sidecar", "--interval", "soon"])
    assert result.exit_code == 2 and "duration like '10m'" in result.output


def test_param_type_and_config_values() -> None:
    assert DURATION.convert("1h30m", None, None) == 5400
    assert config_duration("0.25", "interval") == 0.25
    with pytest.raises(InvalidRequestError, match=r"^refresh: must be seconds or a duration"):
        config_duration("5 min", "refresh")
