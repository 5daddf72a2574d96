r"""Durations: the one parser for every "seconds" value (settings, API bodies, rotation policies).

Accepted: a number of seconds (``90``, ``0.5``), the same as a string (``"90"``, ``"0.5"``), or
units ``d``/``h``/``m``/``s`` in that order (``"10m"``, ``"1h30m"``, ``"2d"``, ``"1.5s"``).
The parser only checks the form and the absolute range (0 to 10 years); each use states its
own bounds with ``Field(gt=..., ge=..., le=...)`` on top of :data:`Duration`. Error messages
never echo the input (it may be a mistyped secret). Input is untrusted: ASCII digits only
(``\d`` and ``float()`` also take Unicode digits such as ``²``), bounded lengths, and NaN,
infinities and integers too large for a float are refused before any conversion.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator

MAX_SECONDS = 10 * 365 * 86400.0
_NUMBER = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")
_UNITS = re.compile(
    r"(?=[0-9])(?:([0-9]{1,9})d)?(?:([0-9]{1,9})h)?(?:([0-9]{1,9})m(?!s))?"
    r"(?:([0-9]{1,9}(?:\.[0-9]{1,9})?)s)?"
)
_FORM = "must be seconds or a duration like '10m' or '1h30m'"


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``"90"``, ``"0.5"``, ``"10m"``, ``"1h30m"``, ``"2d"``.

    Raises ``ValueError`` (pydantic turns it into a validation error naming the field).
    """
    if isinstance(value, bool):
        raise ValueError(_FORM)
    if isinstance(value, int):
        # Compared before float(): a 400-digit int overflows a float.
        if not 0 <= value <= MAX_SECONDS:
            raise ValueError("must be between 0 and 10 years")
        seconds = float(value)
    elif isinstance(value, float):
        seconds = value
    elif isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            seconds = float(text)
        elif text and (match := _UNITS.fullmatch(text)) is not None:
            d, h, m = (int(g) if g else 0 for g in match.groups()[:3])
            seconds = d * 86400 + h * 3600 + m * 60 + float(match.group(4) or 0)
        else:
            raise ValueError(_FORM)
    else:
        raise ValueError(_FORM)
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_SECONDS:
        raise ValueError("must be between 0 and 10 years")
    return seconds


# Seconds, written as a number or a duration string; add ``Field`` bounds where it is used.
Duration = Annotated[float, BeforeValidator(parse_duration)]
