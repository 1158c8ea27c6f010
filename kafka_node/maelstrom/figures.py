"""Figures of finished runs that the fault matrix and the benchmark both report: the share of
operations that completed ok, and a quantile of a few values."""

from __future__ import annotations

import statistics


def ok_fraction(stats: dict[str, dict[str, int]]) -> float:
    """Client operations that completed ok, of all of them (a client's crash is no operation)."""
    counts = [c for f, c in stats.items() if f != "crash"]
    total = sum(c.get("ok", 0) + c.get("fail", 0) + c.get("info", 0) for c in counts)
    return sum(c.get("ok", 0) for c in counts) / total if total else 0.0


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]
