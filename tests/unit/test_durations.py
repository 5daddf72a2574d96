"""The one duration parser, and that the API, rotation policies and settings all use it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vaultside import durations
from vaultside.api.models import TokenCreate
from vaultside.durations import parse_duration
from vaultside.rotation import policy


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (0.5, 0.5),
        ("90", 90.0),
        ("0.5", 0.5),
        (" 10m ", 600.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("1d2h3m4s", 93784.0),
        ("1.5s", 1.5),
        (0, 0.0),
    ],
)
def test_accepted(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    ["", " ", "m", "10ms", "1m1h", "1.5h", "-5", "ten", "1 h", "1h 30m", True, None, [], "nan"],
)
def test_near_misses_are_rejected_without_echoing_them(value: object) -> None:
    with pytest.raises(ValueError) as err:
        parse_duration(value)
    assert str(err.value) == "must be seconds or a duration like '10m' or '1h30m'"


def test_range_is_at_most_ten_years() -> None:
    parse_duration(durations.MAX_SECONDS)
    with pytest.raises(ValueError, match="10 years"):
        parse_duration(durations.MAX_SECONDS + 1)
    with pytest.raises(ValueError, match="10 years"):
        parse_duration(-1)


def test_rotation_policies_and_the_api_share_the_parser() -> None:
    assert policy.Seconds is durations.Duration
    assert TokenCreate.model_validate({"ttl": "1h30m"}).ttl == 5400
    assert TokenCreate.model_validate({"ttl": "0.5"}).ttl == 0.5
    with pytest.raises(ValidationError, match="must be positive"):
        TokenCreate.model_validate({"ttl": 0})


@pytest.mark.parametrize(
    "value",
    ["²", "٣h", "1h ²", "\uff11m", "9" * 5000, "1" * 10 + "d", 10**400, float("inf"),
     float("nan"), -0.5],
)  # fmt: skip
def test_hostile_input_is_refused_without_echoing_it(value: object) -> None:
    # Unicode digits (which \\d and float() accept), huge ints (which overflow float()),
    # NaN and infinities: a ValueError (a 4xx), never OverflowError or an echo of the input.
    with pytest.raises(ValueError) as err:
        parse_duration(value)
    if isinstance(value, str):
        assert value.strip()[:20] not in str(err.value)
