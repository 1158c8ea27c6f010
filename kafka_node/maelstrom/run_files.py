"""Everything a run leaves in its directory besides the node logs and memory.csv (our results and
history, Jepsen's, the pictures), and the time-stamped directories runs and matrices go in."""

from __future__ import annotations

import os
from datetime import datetime
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


def new_stamped_dir(parent: Path) -> Path:
    """parent/<local time>/ (a -2, -3 ... suffix if taken), with parent/latest pointing at it."""
    now = datetime.now().astimezone()
    stamp = now.strftime("%Y%m%dT%H%M%S.%f")[:-3] + now.strftime("%z")
    parent.mkdir(parents=True, exist_ok=True)
    made, n = parent / stamp, 1
    while True:
        try:
            made.mkdir()
            break
        except FileExistsError:
            n += 1
            made = parent / f"{stamp}-{n}"
    point(parent / "latest", Path(made.name))
    return made


def point(link: Path, target: Path) -> None:
    """Make `link` a symbolic link to `target`, replacing what was there in one step."""
    temporary = link.with_name(f".{link.name}.{os.getpid()}")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target)
    os.replace(temporary, link)
