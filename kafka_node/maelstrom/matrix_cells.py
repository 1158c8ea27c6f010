"""The cells of a fault matrix: the axes' product in order, each cell's flags for the test command
and the command that repeats it, the figures of its finished run, and the matrix's exit status."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka_node.maelstrom import exit_status, failover
from kafka_node.maelstrom.figures import ok_fraction
from kafka_node.maelstrom.matrix_flags import FAULTS, KILLS_OR_PAUSES

#: The matrix's exit status is its worst cell's, in this order.
WORST_FIRST = (exit_status.CRASHED, exit_status.INVALID, exit_status.UNKNOWN, exit_status.VALID)
#: A cell's outcome in a word, by the test command's exit status (any other: the runner crashed).
OUTCOMES = {exit_status.VALID: "valid", exit_status.INVALID: "invalid", exit_status.UNKNOWN: "unknown",
            exit_status.INTERRUPTED: "interrupted"}


@dataclass(frozen=True)
class Cell:
    index: int  # from 1, in the matrix's order
    node_count: int
    latency_dist: str
    latency_ms: int
    fault: str
    seed: int

    def label(self) -> str:
        nodes = f"{self.node_count} node{'' if self.node_count == 1 else 's'}"
        return f"{nodes}, {self.fault}, {self.latency_dist} {self.latency_ms} ms, seed {self.seed}"

    @property
    def baseline(self) -> tuple[int, str, int]:
        """What its calm cell shares with it: node count, latency distribution and seed."""
        return self.node_count, self.latency_dist, self.seed


def cells_of(args: argparse.Namespace) -> list[Cell]:
    """Node count, then latency distribution, then fault (calm first), then seed."""
    product = [(n, dist, fault, seed) for n in args.node_counts for dist in args.latency_dists
               for fault in args.faults for seed in args.seeds]
    return [Cell(index, n, dist, args.latency, fault, seed) for index, (n, dist, fault, seed) in enumerate(product, 1)]


def test_flags(cell: Cell, args: argparse.Namespace, node_args: list[str]) -> list[str]:
    """The test command's flags for the cell, the node's own arguments after `--`."""
    flags = ["--bin", args.bin, "--node-count", str(cell.node_count), "--concurrency", args.concurrency,
             "--time-limit", _number(args.time_limit), "--rate", _number(args.rate),
             "--recovery-time", _number(args.recovery_time), *FAULTS[cell.fault]]
    if cell.fault != "calm" and args.nemesis_interval is not None:
        flags += ["--nemesis-interval", _number(args.nemesis_interval)]
    if cell.fault in KILLS_OR_PAUSES and args.nemesis_targets:
        flags += ["--nemesis-targets", args.nemesis_targets]
    if args.rpc_timeout is not None:
        flags += ["--rpc-timeout", _number(args.rpc_timeout)]
    flags += ["--latency", str(cell.latency_ms), "--latency-dist", cell.latency_dist, "--seed", str(cell.seed),
              "--store", args.store]
    return [*flags, "--", *node_args] if node_args else flags


def _number(value: float) -> str:
    """A number as a flag's value: short when that is exact (20, 0.5), else in full."""
    return f"{value:g}" if float(f"{value:g}") == value else repr(value)


def faults_done(run: dict[str, Any]) -> str:
    """What the run's faults did, from results.json's `run`: cutting partitions and the messages
    they dropped, kills and pauses that hit a node, disk losses; "none" for a calm run."""
    done = []
    if partitions := run.get("partitions"):
        done.append(f"{partitions['cutting']} cuts ({partitions['dropped_messages']} dropped)")
    for name in ("kills", "pauses"):
        if faults := run.get(name):
            done.append(f"{faults['effective']} {name}")
    if losses := run.get("disk_losses"):
        done.append(f"{losses['count']} disk losses")
    return ", ".join(done) or "none"


def child_command(flags: list[str]) -> list[str]:
    """The cell's test command as the matrix runs it: this Python, the package's own module."""
    return [sys.executable, "-m", "kafka_node.maelstrom", "test", *flags]


def shown_command(flags: list[str]) -> str:
    """The cell's test command as a user would type it to repeat the cell."""
    return shlex.join(["maelstrom-kafka-test", *flags])


def figures_of(status: int, run_dir: Path | None) -> dict[str, Any]:
    """A finished cell's figures from its run's results.json and history.jsonl (None where the run
    left none, e.g. a node that could not be started)."""
    results: dict[str, Any] = {}
    if run_dir is not None and (run_dir / "results.json").is_file():
        try:
            loaded = json.loads((run_dir / "results.json").read_text())
            results = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            results = {}
    maelstrom = results.get("maelstrom") or {}
    stricter = results.get("stricter") or {}
    perf = results.get("perf") or {}
    stats = results.get("stats")
    return {
        "status": status,
        "outcome": OUTCOMES.get(status, "crashed"),
        "validity": results.get("validity", results.get("valid")),
        "maelstrom_valid": maelstrom.get("valid"),
        "stricter_valid": stricter.get("valid"),
        "anomaly_types": list(results.get("anomaly_types") or []),
        "unseen_only_untracked_keys": maelstrom.get("unseen_only_untracked_keys") is True,
        "aborted": results.get("aborted"),
        "faults_done": faults_done(results["run"]) if isinstance(results.get("run"), dict) else None,
        "ok_fraction": round(ok_fraction(stats), 6) if isinstance(stats, dict) else None,
        "throughput": perf.get("main_phase_ops_per_s"),
        "of_calm": None,
        **failover.of_run(run_dir, results),
    }


def with_calm_ratio(record: dict[str, Any], calm: dict[str, Any] | None) -> dict[str, Any]:
    """The record with its throughput as a fraction of its calm cell's (None without either)."""
    base = calm.get("throughput") if calm else None
    if base and record.get("throughput") is not None:
        record["of_calm"] = round(record["throughput"] / base, 3)
    return record


def cell_status(status: int) -> int:
    """A cell's share of the matrix's exit status: a run cut short counts as aborted (invalid),
    any status the test command does not give for a verdict as a crash."""
    if status == exit_status.INTERRUPTED:
        return exit_status.INVALID
    return status if status in WORST_FIRST else exit_status.CRASHED


def matrix_status(statuses: list[int], interrupted: bool) -> int:
    if interrupted:
        return exit_status.INTERRUPTED
    shares = {cell_status(status) for status in statuses}
    return next((status for status in WORST_FIRST if status in shares), exit_status.VALID)


def progress_line(record: dict[str, Any], total: int, label: str) -> str:
    """`[3/24] 3 nodes, partition, exponential 5 ms, seed 1: valid, 99.80 % ok, 487 op/s (0.97 of calm), 34 s`."""
    said = record["outcome"]
    if said == "crashed":
        said += f" (exit {record['status']})"
    elif record["anomaly_types"] and said != "valid":
        said += f" ({', '.join(record['anomaly_types'])})"
    parts = [said]
    if record["ok_fraction"] is not None:
        parts.append(f"{100 * record['ok_fraction']:.2f} % ok")
    if record["throughput"] is not None:
        ratio = f" ({record['of_calm']:.2f} of calm)" if record["of_calm"] is not None else ""
        parts.append(f"{record['throughput']:.0f} op/s{ratio}")
    if record["failover_p50_ms"] is not None:
        parts.append(f"failover p50 {record['failover_p50_ms']:.0f} ms")
    parts.append(f"{record['seconds']:.0f} s")
    return f"[{record['index']}/{total}] {label}: {', '.join(parts)}"
