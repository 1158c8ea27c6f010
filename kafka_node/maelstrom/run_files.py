"""Everything a run leaves in its directory besides the node logs and memory.csv: our history
and results (JSON), Jepsen's (EDN and text), the plots, messages.svg and timeline.html."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kafka_node.maelstrom import jepsen_store, messages_svg, plots, report, timeline
from kafka_node.maelstrom.history import Op, write_jsonl
from kafka_node.maelstrom.journal import Journal

#: What each file is, in the order the summary and the web page list them.
FILES = {
    "results.json": "both verdicts, every anomaly, performance and the run's settings",
    "results.edn": "the results as Jepsen writes them (:valid? and the anomalies)",
    "history.jsonl": "every operation, one JSON object per line",
    "history.edn": "every operation as Jepsen's store writes it, nemesis operations included",
    "history.txt": "the history condensed: process, type, f, value, error",
    "timeline.html": "each process's operations, coloured ok / info / fail",
    "messages.svg": "every message between clients, nodes and services (a Lamport diagram)",
    "latency-raw.png": "each operation's latency",
    "latency-quantiles.png": "latency quantiles over time",
    "rate.png": "operations per second",
    "jepsen.log": "the runner's log of the run",
    "memory.csv": "the nodes' memory over time",
    "hostile.jsonl": "each hostile line written and the node's answer",
    "node-logs": "each node's stderr",
    "nodes": "each node's working directory, holding what it wrote at relative paths",
}


def write_history(ops: list[Op], run_dir: Path) -> None:
    write_jsonl(ops, run_dir / "history.jsonl")
    jepsen_store.write_history_edn(ops, run_dir / "history.edn")
    jepsen_store.write_history_txt(ops, run_dir / "history.txt")


def write_results(data: dict[str, Any], run_dir: Path) -> None:
    report.write_results(run_dir / "results.json", data)
    jepsen_store.write_results_edn(data, run_dir / "results.edn")


def write_pictures(ops: list[Op], journal: Journal, run_dir: Path) -> str | None:
    """The plots, messages.svg and timeline.html; a note if the plots had to be skipped."""
    messages_svg.write(journal.messages, journal.truncated, run_dir / "messages.svg")
    timeline.write(ops, run_dir / "timeline.html", title=f"kafka {run_dir.name}")
    return plots.plot(ops, run_dir)
