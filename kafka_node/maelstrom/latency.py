"""Maelstrom's latency distributions (`latency-dist` and `latency-for` in src/maelstrom/net.clj):
each message between servers draws whole milliseconds; the draws are counted for the report."""

from __future__ import annotations

import random
from typing import Any

#: Maelstrom's --latency-dist values.
DISTRIBUTIONS = ("constant", "uniform", "exponential")


def refusal(kind: str, mean_ms: int) -> str | None:
    """Why Maelstrom cannot draw from `kind` with this mean, or None: its uniform draw from a
    mean of 0 never returns, and its exponential divides by zero."""
    if kind != "constant" and mean_ms <= 0:
        return (f"--latency-dist {kind} needs --latency above 0: Maelstrom cannot draw it from a mean of 0 "
                f"(its uniform draw never returns, its exponential divides by zero)")
    return None


class LatencyDistribution:
    """Draws of one run, as net.clj makes them, cut to whole milliseconds by `(long (draw ...))`:
    constant is the mean; uniform is incanter's `integer-distribution 0 (* 2 mean)`, whole
    milliseconds from 0 to 2 x mean - 1; exponential has the given mean. Seeded, so a run's
    draws repeat with its seed; `count`, `total` and `largest` describe what was drawn."""

    def __init__(self, kind: str, mean_ms: int, rng: random.Random) -> None:
        if kind not in DISTRIBUTIONS:
            raise ValueError(f"latency distribution must be one of {', '.join(DISTRIBUTIONS)}, got {kind!r}")
        if reason := refusal(kind, mean_ms):
            raise ValueError(reason)
        self.kind = kind
        self.mean_ms = mean_ms
        self.rng = rng
        self.count = 0
        self.total = 0
        self.largest = 0

    def draw_ms(self) -> int:
        """One message's latency in whole milliseconds."""
        if self.kind == "constant":
            drawn = self.mean_ms
        elif self.kind == "uniform":
            drawn = self.rng.randrange(2 * self.mean_ms)
        else:
            drawn = int(self.rng.expovariate(1 / self.mean_ms))
        self.count += 1
        self.total += drawn
        if drawn > self.largest:
            self.largest = drawn
        return drawn

    def described(self) -> dict[str, Any]:
        """The distribution asked for and what was drawn from it (mean and maximum in ms)."""
        return {"dist": self.kind, "mean_ms": self.mean_ms, "draws": self.count,
                "draw_mean_ms": round(self.total / self.count, 3) if self.count else None,
                "draw_max_ms": self.largest if self.count else None}
