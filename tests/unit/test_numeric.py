"""The one ASCII-integer and duration parser: a table of inputs, near misses included."""

from __future__ import annotations

import pytest

from vaultside.numeric import is_ascii_int, parse_int


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
