"""Cron parsing and next-run computation (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vaultside.rotation.cron import CronError, CronSchedule


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("* * * * *", ts(2024, 1, 1, 0, 0, 30), ts(2024, 1, 1, 0, 1)),
        ("0 3 * * *", ts(2024, 1, 1, 3, 0), ts(2024, 1, 2, 3, 0)),
        ("0 3 * * *", ts(2024, 1, 1, 2, 59), ts(2024, 1, 1, 3, 0)),
        ("*/15 * * * *", ts(2024, 1, 1, 0, 16), ts(2024, 1, 1, 0, 30)),
        ("30 2 1 * *", ts(2024, 1, 15), ts(2024, 2, 1, 2, 30)),
        ("0 0 29 2 *", ts(2024, 3, 1), ts(2028, 2, 29)),
        ("0 9 * * mon", ts(2024, 1, 1, 9, 0), ts(2024, 1, 8, 9, 0)),  # 2024-01-01 is Monday
        ("0 9 * * 7", ts(2024, 1, 1), ts(2024, 1, 7, 9, 0)),  # 7 = Sunday
        ("0 0 1-5 jan-feb 1-5/2", ts(2024, 1, 1), ts(2024, 1, 2)),
        ("0 0 13 * 5", ts(2024, 1, 1), ts(2024, 1, 5)),  # day-of-month OR day-of-week
        ("59 23 31 12 *", ts(2024, 12, 31, 23, 59), ts(2025, 12, 31, 23, 59)),
    ],
)
def test_next_after(expr: str, after: float, expected: float) -> None:
    assert CronSchedule.parse(expr).next_after(after) == expected


@pytest.mark.parametrize(
    ("expr", "field"),
    [
        ("61 * * * *", "minute"),
        ("* 24 * * *", "hour"),
        ("* * 0 * *", "day of month"),
        ("* * * 13 *", "month"),
        ("* * * * 8", "day of week"),
        ("*/0 * * * *", "minute"),
        ("5-1 * * * *", "minute"),
        ("x * * * *", "minute"),
        ("* * * *", "5 fields"),
        ("* * * * * *", "5 fields"),
    ],
)
def test_bad_expressions_name_the_field(expr: str, field: str) -> None:
    with pytest.raises(CronError, match=field):
        CronSchedule.parse(expr)


def test_never_matching_is_an_error() -> None:
    with pytest.raises(CronError, match="never matches"):
        CronSchedule.parse("0 0 30 2 *").next_after(0.0)


@pytest.mark.parametrize(
    ("macro", "after", "expected"),
    [
        ("@hourly", ts(2024, 1, 1, 0, 0), ts(2024, 1, 1, 1, 0)),
        ("@daily", ts(2024, 1, 1, 12, 0), ts(2024, 1, 2)),
        ("@midnight", ts(2024, 1, 1, 12, 0), ts(2024, 1, 2)),
        ("@weekly", ts(2024, 1, 1), ts(2024, 1, 7)),  # Sunday 00:00
        ("@monthly", ts(2024, 1, 15), ts(2024, 2, 1)),
        ("@yearly", ts(2024, 1, 1), ts(2025, 1, 1)),
        ("@annually", ts(2024, 6, 1), ts(2025, 1, 1)),
        ("@DAILY", ts(2024, 1, 1, 12, 0), ts(2024, 1, 2)),
    ],
)
def test_macros_as_kubernetes_cronjob_users_type_them(
    macro: str, after: float, expected: float
) -> None:
    schedule = CronSchedule.parse(macro)
    assert schedule.next_after(after) == expected
    assert schedule.expression == macro.lower()


@pytest.mark.parametrize("expr", ["@reboot", "@every 1h", "@", "@daily 0"])
def test_unknown_macros_are_refused(expr: str) -> None:
    with pytest.raises(CronError):
        CronSchedule.parse(expr)
