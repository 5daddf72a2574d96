"""Entropy measures used by rules (``entropy = N``) and by the generic-value filters."""

from __future__ import annotations

import math
from collections import Counter


def shannon_entropy(value: bytes | str) -> float:
    """Shannon entropy in bits per character."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def char_classes(value: str) -> int:
    """How many of lower, upper, digit and other character classes ``value`` uses."""
    return (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + any(c.isdigit() for c in value)
        + any(not c.isalnum() for c in value)
    )


def looks_random(value: str, min_entropy: float) -> bool:
    """High enough entropy and at least two character classes (random, not a word)."""
    return shannon_entropy(value) >= min_entropy and char_classes(value) >= 2
