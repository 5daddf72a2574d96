"""The nearest-rank percentile the benchmarks quote (p50/p90/p99 of a list of samples)."""

from __future__ import annotations


def pct(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ``values``, by nearest rank; ``values`` not empty."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
