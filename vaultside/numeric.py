"""Integers and durations from untrusted text: ASCII digits only, bounded, values never echoed.

Contract:

- ``parse_int(text, low, high, name="")`` accepts only ``[0-9]+`` (no sign, no spaces, no
  Unicode digits such as ``²`` or ``٣``, which ``str.isdigit()`` and ``int()`` accept or
  choke on) of at most as many digits as ``high`` has, and returns a value in
  ``[low, high]``. Anything else raises ``ValueError``.
- Durations (``"1h30m"``) have their own parser with the same rules:
  :mod:`vaultside.durations`.
- ``is_ascii_int(text)`` is what ``str.isdigit()`` is often mistaken for.
- Every ``ValueError`` message names the field (``name``, when given) and the rule, never the
  input: the messages reach clients and logs. Callers wrap them in their own error type
  (``InvalidRequestError``, pydantic's value error, ``CronError``).
"""

from __future__ import annotations

import re

# ASCII only: ``\d`` in a ``str`` pattern also matches Unicode digits.
_DIGITS = re.compile(r"[0-9]+")


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
