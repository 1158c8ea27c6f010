"""How results are shown: one load run in words, and the suite's table (figure, measured,
baseline from the same run, ratio, target, met?) as Markdown and JSON."""

from __future__ import annotations

from typing import Literal

import msgspec

from kafka_node.bench.load import LoadResult


class Target(msgspec.Struct):
    """A bound on the measured figure or on measured/baseline; `None` bound: report only."""

    on: Literal["measured", "ratio"]
    bound: Literal["<=", ">="] | None = None
    value: float | None = 0.0  # None: a bound made of figures that were not measured
    text: str = ""  # as shown in the table

    def met(self, measured: float | None, ratio: float | None) -> bool | None:
        figure = measured if self.on == "measured" else ratio
        if self.bound is None or figure is None or self.value is None:
            return None
        return figure <= self.value if self.bound == "<=" else figure >= self.value


class Row(msgspec.Struct):
    """One line of the table: a figure beside its baseline from the same run."""

    id: str
    figure: str
    unit: str
    measured: float | None
    baseline: float | None
    baseline_is: str  # what the baseline measures
    target: Target
    also: list[Target] = []  # further conditions that must hold too

    @property
    def ratio(self) -> float | None:
        if self.measured is None or not self.baseline:
            return None
        return self.measured / self.baseline

    @property
    def met(self) -> bool | None:
        verdicts = [t.met(self.measured, self.ratio) for t in (self.target, *self.also)]
        if any(v is False for v in verdicts):
            return False
        return None if all(v is None for v in verdicts) else True


def number(value: float | None, unit: str = "") -> str:
    """A figure as people read it: thousands separated, precision suited to its size."""
    if value is None:
        return "—"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def markdown_table(rows: list[Row]) -> str:
    """The table in Markdown, one row per figure."""
    lines = [
        "| | figure | measured | baseline (same run) | ratio | target | met? |",
        "|---|---|---:|---|---:|---|---|",
    ]
    for row in rows:
        met = {True: "yes", False: "**no**", None: "—"}[row.met]
        target = "; ".join(t.text for t in (row.target, *row.also))
        baseline = f"{number(row.baseline, row.unit)} ({row.baseline_is})" if row.baseline_is else "—"
        ratio = "—" if row.ratio is None else f"{row.ratio:.2f}"
        lines.append(f"| {row.id} | {row.figure} | {number(row.measured, row.unit)} | {baseline} | {ratio} | {target} | {met} |")
    return "\n".join(lines)


#: The lines around the table in docs/performance.md, which `suite --doc` replaces.
TABLE_START = "<!-- the table below is written by make bench -->"
TABLE_END = "<!-- end of the table written by make bench -->"


def with_table(markdown: str, table: str) -> str:
    """`markdown` with the text between TABLE_START and TABLE_END replaced by `table`."""
    start, end = markdown.find(TABLE_START), markdown.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"no {TABLE_START!r} ... {TABLE_END!r} section to put the table in")
    return f"{markdown[:start + len(TABLE_START)]}\n{table}{markdown[end:]}"


def table_figures(markdown: str) -> list[tuple[str, str]]:
    """(id, figure) of each row of the table between the markers."""
    start, end = markdown.find(TABLE_START), markdown.find(TABLE_END)
    rows = [line.split("|") for line in markdown[start:end].splitlines() if line.startswith("| ") and "---" not in line]
    return [(cells[1].strip(), cells[2].strip()) for cells in rows[1:]]


def rows_as_data(rows: list[Row]) -> list[dict]:
    """The rows with their computed ratio and verdict, for the JSON results."""
    return [msgspec.to_builtins(row) | {"ratio": row.ratio, "met": row.met} for row in rows]


def describe_load(result: LoadResult) -> str:
    """One load run in a few lines of text."""
    lines = [
        f"node:       {result.command}",
        f"load:       {result.in_flight} in flight, mix {result.mix}, {result.keys} keys"
        f"{f', {result.poll_keys} keys per poll' if result.poll_keys > 1 else ''}, {result.msg_bytes}-byte messages, "
        f"{result.warmup_s:g} s warm-up",
        f"throughput: {number(result.throughput)} acknowledged requests/s "
        f"({result.acknowledged:,} in {result.window_s:.2f} s)",
        f"latency:    {'rpc':<24}{'count':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}",
    ]
    for rpc, s in result.latency.items():
        lines.append(f"            {rpc:<24}{s.count:>9}{s.p50_ms:>9.3f}{s.p95_ms:>9.3f}{s.p99_ms:>9.3f}{s.max_ms:>9.3f}")
    resources = [f"init_ok {result.init_ms:.0f} ms after start"]
    if result.node_cpu is not None:
        resources.append(f"{result.node_cpu:.2f} cores busy")
    if result.node_memory is not None:
        resources.append(f"VmHWM {result.node_memory.peak_kib / 1024:.1f} MiB, VmRSS {result.node_memory.now_kib / 1024:.1f} MiB")
    lines.append(f"node:       {', '.join(resources)}; exit status {result.exit_status}")
    lines.append(f"generator:  {result.generator_cpu:.2f} cores busy, {result.requests_sent:,} requests sent")
    if result.ok:
        lines.append("errors:     none")
    else:
        problems = [f"{count} × {kind}" for kind, count in result.errors.items()]
        if result.unanswered:
            problems.append(f"{result.unanswered} unanswered")
        lines.append(f"errors:     {'; '.join(problems)}")
        lines += [f"            {example}" for example in result.error_examples]
    return "\n".join(lines)
