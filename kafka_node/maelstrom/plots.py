"""The run's pictures as Jepsen's perf checker draws them (when matplotlib is installed):
latency-raw.png, latency-quantiles.png and rate.png, with the nemesis' periods shaded."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka_node.maelstrom.history import FAIL, INFO, OK, Op, pairs

#: Colour per operation and marker per outcome, shared by the figures.
COLORS = {"send": "tab:blue", "poll": "tab:green", "assign": "tab:orange"}
MARKERS = {OK: "o", FAIL: "x", INFO: "^"}
LINESTYLES = {OK: "-", FAIL: ":", INFO: "--"}
#: Jepsen's quantiles, and the colour it gives each (perf.clj).
QUANTILES = {0.5: "tab:blue", 0.95: "tab:purple", 0.99: "tab:orange", 1.0: "tab:red"}
#: Jepsen's bucket for latency quantiles is 30 s and for rates 10 s; a shorter run gets at
#: least this many buckets, or the whole of a 20 s run would be one point.
MIN_BUCKETS = 20
#: How Jepsen's perf checker shades each nemesis (jepsen.nemesis.combined's :perf of the
#: partition and db packages): its name, the fs that start and stop it, its colour.
NEMESES = (("partition", "start-partition", "stop-partition", "#E9DCA0"), ("kill", "kill", "start", "#E9A4A0"),
           ("pause", "pause", "resume", "#A0B1E9"))
NEMESIS_ALPHA = 0.6
#: Each nemesis' band takes a twelfth of the plot's height, from the top, as in Jepsen.
BAND = 0.0834


@dataclass
class NemesisPeriod:
    """One period of a nemesis, as positions in the history (last None: still on at its end)."""

    name: str
    color: str
    first: int
    last: int | None = None


def nemesis_periods(ops: Sequence[Op]) -> list[NemesisPeriod]:
    """Each nemesis period, from the completion of an operation that starts it (a partition
    in place, nodes killed or paused) to the completion of the next that stops it (healed,
    started, resumed). Jepsen pairs the invocations and the completions alike; these are the
    moments the fault was in effect."""
    found: list[NemesisPeriod] = []
    opened: dict[str, NemesisPeriod] = {}
    asked: set[str] = set()  # fs whose invocation has been seen, not yet their completion
    for position, op in enumerate(ops):
        if type(op.process) is int:
            continue
        if op.f not in asked:
            asked.add(op.f)
            continue
        asked.discard(op.f)
        for name, start, stop, color in NEMESES:
            if op.f == stop and name in opened:
                opened.pop(name).last = position
            elif op.f == start and name not in opened:
                opened[name] = NemesisPeriod(name, color, position)
                found.append(opened[name])
    return found


def nemesis_moments(ops: Sequence[Op]) -> Iterator[tuple[float, str]]:
    """When each nemesis op happened, and its nemesis' colour (Jepsen draws a line at each)."""
    colors = {f: color for _, start, stop, color in NEMESES for f in (start, stop)}
    for op in ops:
        if type(op.process) is not int and op.f in colors:
            yield op.time / 1e9, colors[op.f]


def plot(ops: list[Op], run_dir: Path) -> str | None:
    """Draw latency-raw.png, latency-quantiles.png and rate.png; a note instead when matplotlib
    is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plots skipped: matplotlib is not installed (pip install 'kafka-node[plots]')"
    completions = [(inv, op) for inv, op in pairs(ops) if inv is not None and op.f != "crash"]
    end = max((op.time for op in ops), default=0) / 1e9
    for draw, name in ((plot_latency, "latency-raw.png"), (plot_quantiles, "latency-quantiles.png"),
                       (plot_rate, "rate.png")):
        fig, ax = plt.subplots(figsize=(10, 5))
        draw(ax, completions, end)
        shade_nemeses(ax, ops, end)
        fig.savefig(run_dir / name, dpi=100, bbox_inches="tight")
        plt.close(fig)
    return None


def _bucket(end: float, jepsen_seconds: float) -> float:
    return max(0.1, min(jepsen_seconds, end / MIN_BUCKETS))


def plot_latency(ax: Any, completions: list[tuple[Op, Op]], end: float) -> None:
    """Jepsen's latency-raw: each operation's latency at its start, by type and outcome."""
    groups: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for inv, op in completions:
        groups[op.f, op.type].append((inv.time / 1e9, max(1e-3, (op.time - inv.time) / 1e6)))
    for (f, kind), points in sorted(groups.items()):
        xs, ys = zip(*points, strict=True)
        ax.scatter(xs, ys, s=4 if kind == OK else 24, marker=MARKERS.get(kind, "."),
                   color=COLORS.get(f, "tab:gray"), label=f"{f} {kind}", alpha=0.6, linewidths=0.5)
    _decorate(ax, "Latency (ms)", "kafka latency (raw)", log=True)


def plot_quantiles(ax: Any, completions: list[tuple[Op, Op]], end: float) -> None:
    """Jepsen's latency-quantiles: per operation type, the 0.5, 0.95, 0.99 and 1 quantiles of
    the latencies of operations begun in each time bucket, drawn at the bucket's middle."""
    width = _bucket(end, 30.0)
    buckets: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for inv, op in completions:
        buckets[op.f][int(inv.time / 1e9 / width)].append(max(1e-3, (op.time - inv.time) / 1e6))
    linestyles = ("-", "--", ":", "-.")
    for n, (f, by_bucket) in enumerate(sorted(buckets.items())):
        for q, color in QUANTILES.items():
            xs = sorted(by_bucket)
            ys = [_quantile(sorted(by_bucket[i]), q) for i in xs]
            ax.plot([(i + 0.5) * width for i in xs], ys, marker=".", markersize=4, color=color,
                    linestyle=linestyles[n % len(linestyles)], linewidth=1, label=f"{f} {q:g}")
    _decorate(ax, "Latency (ms)", "kafka latency quantiles", log=True)


def _quantile(ordered: list[float], q: float) -> float:
    """The q-quantile of a sorted bucket, by nearest rank (1: its largest)."""
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def plot_rate(ax: Any, completions: list[tuple[Op, Op]], end: float) -> None:
    """Jepsen's rate: completions per second in each time bucket, by type and outcome."""
    width = _bucket(end, 10.0)
    buckets: dict[tuple[str, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for _, op in completions:
        buckets[op.f, op.type][int(op.time / 1e9 / width)] += 1
    for (f, kind), counts in sorted(buckets.items()):
        xs = [i * width for i in range(int(end / width) + 1)]
        ax.step(xs, [counts.get(i, 0) / width for i in range(len(xs))], where="post",
                color=COLORS.get(f, "tab:gray"), linestyle=LINESTYLES.get(kind, "-"), label=f"{f} {kind}",
                linewidth=1)
    _decorate(ax, "Throughput (op/s)", "kafka rate", log=False)


def shade_nemeses(ax: Any, ops: Sequence[Op], end: float) -> None:
    """As Jepsen: each nemesis' periods as a band at the top of the plot (a twelfth of its
    height each), a line at each of its operations, and its name in the legend."""
    periods = nemesis_periods(ops)
    colors = {period.name: period.color for period in periods}
    names = list(colors)
    for period in periods:
        i = names.index(period.name)
        until = ops[period.last].time / 1e9 if period.last is not None else end
        ax.axvspan(ops[period.first].time / 1e9, until, ymin=1 - BAND * (i + 1), ymax=1 - BAND * i,
                   color=period.color, alpha=NEMESIS_ALPHA, linewidth=0)
    for at, color in nemesis_moments(ops):
        ax.axvline(at, color=color, linewidth=1)
    for name, color in colors.items():
        ax.plot([], [], color=color, linewidth=6, label=name)
    if names:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)


def _decorate(ax: Any, ylabel: str, title: str, log: bool) -> None:
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("Time (s)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
