"""Latency samples and their summary: count and p50/p95/p99/max per request type, in ms."""

from __future__ import annotations

import math

import msgspec


class LatencySummary(msgspec.Struct):
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def percentile(ordered: list[int], q: float) -> int:
    """The nearest-rank q-quantile of an ascending, non-empty list."""
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summarize(samples_ns: list[int]) -> LatencySummary | None:
    """The summary of latencies given in nanoseconds; None when there are none."""
    if not samples_ns:
        return None
    ordered = sorted(samples_ns)
    ms = lambda ns: round(ns / 1e6, 3)  # noqa: E731
    return LatencySummary(
        count=len(ordered),
        p50_ms=ms(percentile(ordered, 0.50)),
        p95_ms=ms(percentile(ordered, 0.95)),
        p99_ms=ms(percentile(ordered, 0.99)),
        max_ms=ms(ordered[-1]),
    )
