"""Five-field cron expressions (minute hour day-of-month month day-of-week), always UTC.

Supports ``*``, numbers, ranges ``a-b``, lists ``a,b``, steps ``*/n`` and ``a-b/n``, month
and weekday names (``jan``, ``mon``), and ``7`` as Sunday. As in Vixie cron, when both
day-of-month and day-of-week are restricted a day matches if *either* matches.

The macros Kubernetes CronJob users type first are accepted too (case-insensitive):
``@yearly``/``@annually``, ``@monthly``, ``@weekly``, ``@daily``/``@midnight``, ``@hourly``.
``@reboot`` and ``@every`` are not (a rotation schedule has no "boot").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from vaultside.numeric import is_ascii_int, parse_int

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, low, high, names that map to low+index)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_SEARCH_YEARS = 5
# The Vixie cron / Kubernetes CronJob macros and the five fields each stands for.
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class CronError(ValueError):
    """A cron expression that cannot be parsed; the message names the bad field."""


def _value(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    lowered = text.lower()
    if lowered in names:
        return low + names.index(lowered)
    if not is_ascii_int(text):
        raise CronError(f"{name}: not a number or name")
    try:
        return parse_int(text, low, high, name)
    except ValueError as exc:
        raise CronError(str(exc)) from None


def _field(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{name}: empty list item")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            try:
                step = parse_int(step_text, 1, high, f"{name} step")
            except ValueError as exc:
                raise CronError(str(exc)) from None
        if base == "*":
            start, end = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _value(a, name, low, high, names), _value(b, name, low, high, names)
            if start > end:
                raise CronError(f"{name}: range runs backwards")
        else:
            start = _value(base, name, low, high, names)
            end = high if step_text else start
        out.update(range(start, end + 1, step))
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A parsed cron expression; ``next_after`` gives the next matching minute (UTC)."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        """Parse five space-separated fields or a macro (``@daily``); ``CronError`` names
        the field that is wrong."""
        macro = expression.strip().lower()
        if macro.startswith("@"):
            if macro not in _MACROS:
                known = ", ".join(_MACROS)
                raise CronError(f"unknown macro {macro[:20]!r}; known: {known}")
            parsed = cls.parse(_MACROS[macro])
            return replace(parsed, expression=macro)
        parts = expression.split()
        if len(parts) != 5:
            raise CronError(f"expected 5 fields (minute hour day month weekday), got {len(parts)}")
        sets = [_field(p, *spec) for p, spec in zip(parts, _FIELDS, strict=True)]
        weekdays = frozenset(d % 7 for d in sets[4])
        return cls(
            expression=" ".join(parts),
            minutes=sets[0],
            hours=sets[1],
            days=sets[2],
            months=sets[3],
            weekdays=weekdays,
            days_restricted=parts[2] != "*",
            weekdays_restricted=parts[4] != "*",
        )

    def _day_matches(self, dt: datetime) -> bool:
        dom = dt.day in self.days
        dow = (dt.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return dom or dow
        return dom and dow

    def next_after(self, ts: float) -> float:
        """The first matching minute strictly after ``ts`` (epoch seconds, UTC)."""
        dt = datetime.fromtimestamp(ts, UTC).replace(second=0, microsecond=0)
        dt += timedelta(minutes=1)
        limit = dt.year + _SEARCH_YEARS
        while dt.year <= limit:
            if dt.month not in self.months:
                month = dt.month + 1
                year = dt.year + (month > 12)
                dt = dt.replace(year=year, month=(month - 1) % 12 + 1, day=1, hour=0, minute=0)
                continue
            if not self._day_matches(dt):
                dt = (dt + timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if dt.hour not in self.hours:
                dt = (dt + timedelta(hours=1)).replace(minute=0)
                continue
            if dt.minute not in self.minutes:
                dt += timedelta(minutes=1)
                continue
            return dt.timestamp()
        raise CronError("the expression never matches (e.g. 30 February)")
