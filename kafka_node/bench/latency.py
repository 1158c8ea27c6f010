"""Latency samples and their summary: count and p50/p95/p99/max per request type, in ms."""

from __future__ import annotations

import msgspec

from kafka_node.clientkit.percentiles import percentiles


class LatencySummary(msgspec.Struct):
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def summarize(samples_ns: list[int]) -> LatencySummary | None:
    """The summary of latencies given in nanoseconds; None when there are none."""
    found = percentiles(samples_ns)
    if not found:
        return None
    ms = {name: round(ns / 1e6, 3) for name, ns in found.items()}
    return LatencySummary(count=len(samples_ns), p50_ms=ms["p50"], p95_ms=ms["p95"], p99_ms=ms["p99"], max_ms=ms["max"])
