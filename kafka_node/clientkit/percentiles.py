"""Latency percentiles as both tools report them: the nearest-rank p50, p95, p99 and maximum of
a set of samples, in the samples' own unit (each tool converts and rounds for its report)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TypeVar

Sample = TypeVar("Sample", int, float)

#: The percentiles reported, by name, as fractions of the samples at or below them.
PERCENTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99, "max": 1.0}


def nearest_rank(ordered: Sequence[Sample], q: float) -> Sample:
    """The nearest-rank q-quantile of an ascending, non-empty sequence: the smallest sample
    with at least a fraction q of the samples at or below it."""
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def percentiles(samples: Iterable[Sample]) -> dict[str, Sample]:
    """Each of PERCENTILES of `samples`, by name; empty when there are no samples."""
    ordered = sorted(samples)
    if not ordered:
        return {}
    return {name: nearest_rank(ordered, q) for name, q in PERCENTILES.items()}
