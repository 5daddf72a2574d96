"""The one ASCII-integer and duration parser: a table of inputs, near misses included."""

from __future__ import annotations

import pytest

from vaultside.numeric import is_ascii_int, parse_int, parse_seconds

MAX = 10 * 365 * 86400.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1), ("50", 50), ("07", 7), ("007", None),
        ("0", None), ("51", None), ("", None), ("-1", None), ("+1", None), (" 1", None),
        ("1 ", None), ("1.0", None), ("1e1", None), ("²", None), ("٣", None), ("\uff11", None),
        ("9" * 5000, None), ("0" * 5000 + "1", None),
    ],
)  # fmt: skip
def test_parse_int(text: str, expected: int | None) -> None:
    if expected is None:
        with pytest.raises(ValueError, match=r"^limit: must be an integer from 1 to 50$"):
            parse_int(text, 1, 50, "limit")
    else:
        assert parse_int(text, 1, 50, "limit") == expected


def test_is_ascii_int_is_what_isdigit_is_mistaken_for() -> None:
    assert "²".isdigit() and not is_ascii_int("²")
    assert "٣".isdigit() and not is_ascii_int("٣")
    assert is_ascii_int("0123456789") and not is_ascii_int("") and not is_ascii_int("1\n")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (90, 90.0), (1.5, 1.5), ("90", 90.0), (" 90 ", 90.0), ("1h30m", 5400.0),
        ("2d", 172800.0), ("1d2h3m4s", 93784.0), ("10s", 10.0),
        (0, None), ("0", None), (-1, None), (True, None), (None, None), ([], None),
        ("", None), ("h", None), ("1x", None), ("²", None), ("٣h", None), ("1h ²", None),
        ("9" * 5000, None), (10**400, None), (float("inf"), None), (float("nan"), None),
        ("1" * 10 + "d", None), (MAX + 1, None),
    ],
)  # fmt: skip
def test_parse_seconds(value: object, expected: float | None) -> None:
    if expected is None:
        with pytest.raises(ValueError) as info:
            parse_seconds(value, MAX)
        if isinstance(value, str) and len(value.strip()) > 2:
            assert value.strip()[:20] not in str(info.value)  # the rule, never the input
    else:
        assert parse_seconds(value, MAX) == expected


def test_parse_seconds_allows_zero_only_when_asked() -> None:
    assert parse_seconds("0", MAX, allow_zero=True) == 0.0
    with pytest.raises(ValueError, match="above 0"):
        parse_seconds(0, MAX)
