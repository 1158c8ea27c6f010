"""A fault matrix's directory and files: <store>/matrix/<local time>/ with the latest link beside it,
the Markdown table (matrix.md, also printed) and matrix.json, every cell's data and command."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

from kafka_node.maelstrom import run_files

#: The folder of the store the matrices are kept in, each named as a run is.
MATRICES = "matrix"
#: The table's columns, and how each is aligned.
COLUMNS = (("#", "--:"), ("nodes", "--:"), ("faults", ":--"), ("latency", ":--"), ("seed", "--:"),
           ("faults done", ":--"),
           ("Maelstrom", ":--"), ("stricter", ":--"), ("anomalies", ":--"), ("ok", "--:"),
           ("throughput (of calm)", "--:"), ("failover p50 / p99", "--:"))
#: Said of a Maelstrom verdict invalid only by unseen keys its generator stopped tracking (docs/runner.md).
UNTRACKED = "unseen (untracked keys only: Maelstrom's generator)"


def new_matrix_dir(store: Path) -> Path:
    """store/matrix/<local time>/, with store/matrix/latest pointing at it (named as the test
    command names its run directories)."""
    return run_files.new_stamped_dir(store / MATRICES)


def write(matrix_dir: Path, matrix: dict[str, Any]) -> str:
    """Write matrix.json and matrix.md (written again after each cell, so that a matrix cut short
    keeps the cells done); the Markdown."""
    text = markdown(matrix)
    for name, content in (("matrix.json", json.dumps(matrix, indent=2, ensure_ascii=False) + "\n"),
                          ("matrix.md", text)):
        temporary = matrix_dir / f".{name}.tmp"
        temporary.write_text(content)
        os.replace(temporary, matrix_dir / name)
    return text


def markdown(matrix: dict[str, Any]) -> str:
    cells = matrix["cells"]
    lines = [f"# Fault matrix, {matrix['started']}", "", *_header(matrix), "",
             "| " + " | ".join(name for name, _ in COLUMNS) + " |",
             "|" + "|".join(align for _, align in COLUMNS) + "|"]
    lines += ["| " + " | ".join(_row(cell)) + " |" for cell in cells]
    if not cells:
        lines.append("| " + " | ".join(["—"] * len(COLUMNS)) + " |")
    lines += ["", "Each cell's command (it repeats the cell) and run directory:", ""]
    lines += [f"{cell['index']}. `{cell['command']}`" + (f" (`{cell['run_dir']}`)" if cell["run_dir"] else "")
              for cell in cells]
    return "\n".join(lines) + "\n"


def _header(matrix: dict[str, Any]) -> list[str]:
    axes, each = matrix["axes"], matrix["settings"]
    node_args = f", node args `{shlex.join(matrix['node_args'])}`" if matrix["node_args"] else ""
    optional = [f"{name} {each[key]:g} s" for name, key in (("nemesis interval", "nemesis_interval"),
                                                            ("RPC timeout", "rpc_timeout")) if each[key] is not None]
    outcomes: dict[str, int] = {}
    for cell in matrix["cells"]:
        outcomes[cell["outcome"]] = outcomes.get(cell["outcome"], 0) + 1
    done = f"cells: {len(matrix['cells'])} of {matrix['cells_planned']} run"
    if matrix.get("interrupted"):
        done += " (the matrix was interrupted)"
    if matrix["cells"]:
        done += ": " + ", ".join(f"{count} {outcome}" for outcome, count in outcomes.items())
    if matrix.get("exit_status") is not None:
        done += f"; exit status {matrix['exit_status']}"
    return [
        f"- bin: `{matrix['bin']}`{node_args}",
        f"- axes: node counts {_listed(axes['node_counts'])}; latency {_listed(axes['latency_dists'])} "
        f"(mean {axes['latency_ms']} ms); faults {_listed(axes['faults'])}; seeds {_listed(axes['seeds'])}",
        f"- each cell: time limit {each['time_limit']:g} s, rate {each['rate']:g} op/s, concurrency "
        f"{each['concurrency']}, recovery time {each['recovery_time']:g} s"
        + "".join(f", {item}" for item in optional)
        + (f", kills and pauses of {each['nemesis_targets']}" if each.get("nemesis_targets") else "")
        + f"; store `{each['store']}`",
        f"- {done}",
    ]


def _listed(values: list[Any]) -> str:
    return ", ".join(str(value) for value in values)


def _row(cell: dict[str, Any]) -> list[str]:
    maelstrom = {True: "valid", False: "invalid", "unknown": "unknown"}.get(cell["maelstrom_valid"], "—")
    stricter = {True: "passed", False: "failed"}.get(cell["stricter_valid"], "—")
    ok = f"{100 * cell['ok_fraction']:.2f} %" if cell["ok_fraction"] is not None else "—"
    throughput = "—"
    if cell["throughput"] is not None:
        throughput = f"{cell['throughput']:.0f} op/s ({_or_dash(cell['of_calm'], '.2f')})"
    failover = "—"
    if cell["failover_p50_ms"] is not None:
        failover = f"{cell['failover_p50_ms']:.0f} / {cell['failover_p99_ms']:.0f} ms"
    return [str(cell["index"]), str(cell["node_count"]), cell["fault"],
            f"{cell['latency_dist']} {cell['latency_ms']} ms", str(cell["seed"]), cell.get("faults_done") or "—",
            maelstrom, stricter,
            anomalies_said(cell).replace("|", "\\|"), ok, throughput, failover]


def anomalies_said(cell: dict[str, Any]) -> str:
    """The anomalies column: the anomaly types, the known generator quirk said as such, and a
    cell that crashed or was interrupted said first."""
    types = list(cell["anomaly_types"])
    if types == ["unseen"] and cell["unseen_only_untracked_keys"]:
        types = [UNTRACKED]
    said = ", ".join(types) or "none"
    if cell["outcome"] == "crashed":
        reason = str(cell["aborted"] or "see its output")
        return f"crashed (exit {cell['status']}): {reason[:120]}"
    if cell["outcome"] == "interrupted":
        return f"interrupted; {said}"
    return said


def _or_dash(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)
