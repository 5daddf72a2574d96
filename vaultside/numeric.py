"""Integers and durations from untrusted text: ASCII digits only, bounded, values never echoed.

Contract:

- ``parse_int(text, low, high, name="")`` accepts only ``[0-9]+`` (no sign, no spaces, no
  Unicode digits such as ``²`` or ``٣``, which ``str.isdigit()`` and ``int()`` accept or
  choke on) of at most as many digits as ``high`` has, and returns a value in
  ``[low, high]``. Anything else raises ``ValueError``.
- ``parse_seconds(value, maximum, allow_zero=False, name="")`` accepts a JSON number,
  ``"90"`` or a duration such as ``"1h30m"`` / ``"2d"`` (ASCII digits, at most 9 per unit)
  and returns float seconds above 0 (or from 0) up to ``maximum``; NaN, infinities and
  integers too large for a float are refused before any conversion.
- ``is_ascii_int(text)`` is what ``str.isdigit()`` is often mistaken for.
- Every ``ValueError`` message names the field (``name``, when given) and the rule, never the
  input: the messages reach clients and logs. Callers wrap them in their own error type
  (``InvalidRequestError``, pydantic's value error, ``CronError``).
"""

from __future__ import annotations

import math
import re

# ASCII only: ``\d`` in a ``str`` pattern also matches Unicode digits.
_DIGITS = re.compile(r"[0-9]+")
_DURATION = re.compile(r"(?:([0-9]{1,9})d)?(?:([0-9]{1,9})h)?(?:([0-9]{1,9})m)?(?:([0-9]{1,9})s)?")
_DURATION_RULE = "must be seconds or a duration like '1h30m'"


def is_ascii_int(text: str) -> bool:
    """True when ``text`` is one or more ASCII digits (what ``str.isdigit()`` should mean)."""
    return _DIGITS.fullmatch(text) is not None


def _rule(name: str, rule: str) -> ValueError:
    return ValueError(f"{name}: {rule}" if name else rule)


def parse_int(text: str, low: int, high: int, name: str = "") -> int:
    """``text`` as an integer in ``[low, high]``; ``ValueError`` naming ``name`` otherwise."""
    if len(text) > len(str(high)) or not is_ascii_int(text) or not low <= int(text) <= high:
        raise _rule(name, f"must be an integer from {low} to {high}")
    return int(text)


def parse_seconds(
    value: object, maximum: float, *, allow_zero: bool = False, name: str = ""
) -> float:
    """Seconds from ``90``, ``"90"``, ``"1h30m"`` or ``"2d"``: above 0 (or 0 when
    ``allow_zero``) and at most ``maximum``. NaN, infinities and Unicode digits are refused.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _rule(name, _DURATION_RULE)
    if isinstance(value, str):
        text = value.strip()
        if len(text) <= 32 and is_ascii_int(text):
            value = int(text)
        elif text and (match := _DURATION.fullmatch(text)) is not None:
            d, h, m, s = (int(g) if g else 0 for g in match.groups())
            value = d * 86400 + h * 3600 + m * 60 + s
        else:
            raise _rule(name, _DURATION_RULE)
    # Compared before any float() of an int: a 400-digit int overflows a float.
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value <= maximum) or not math.isfinite(value):
        lowest = "from 0" if allow_zero else "above 0"
        raise _rule(name, f"must be {lowest} and at most {maximum:.0f} seconds")
    return float(value)
