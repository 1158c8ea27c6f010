"""The table of whole runs docs/replication.md shows: every run under a store folder (`make
replication-runs` makes them), one row per node count and network, with both verdicts, operations
ok, throughput against the calm runs of the same size, failover times and lin-kv changes.

    PYTHONPATH=tests python -m support.replication_table store/replication-runs
"""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka_node.bench.faults import unavailability
from kafka_node.maelstrom.figures import ok_fraction, quantile

from support.leadership_log import changes_in


@dataclass
class Group:
    """The runs of one node count and one network."""

    nodes: int
    network: str
    #: The network of the calm runs its throughput is set against (same latency and rate).
    calm_network: str
    runs: int = 0
    valid: int = 0
    #: Runs whose only anomaly is Maelstrom's unseen, every case a key the final polls never asked
    #: for (its generator stops tracking keys with the main phase: docs/runner.md).
    generators: int = 0
    ok: list[float] = field(default_factory=list)
    throughput: list[float] = field(default_factory=list)
    failovers: list[float] = field(default_factory=list)
    leader_changes: list[int] = field(default_factory=list)
    in_sync_changes: list[int] = field(default_factory=list)


def _faults(run: dict[str, Any]) -> str:
    faults = [fault for fault in (run.get("nemesis") or "").split(",") if fault]
    if run.get("lose_disk"):
        faults.append("disk loss")
    return ", ".join(faults) or "calm"


def _network(run: dict[str, Any]) -> str:
    """The faults, the latency and the rate asked: what the runs of one row share."""
    latency = run.get("latency_ms") or 0
    return f"{_faults(run)}; {latency:g} ms latency; {run['rate']:g} op/s" if latency else \
        f"{_faults(run)}; {run['rate']:g} op/s"


def groups(store: Path) -> list[Group]:
    found: dict[tuple[int, str], Group] = {}
    for results_path in sorted(store.glob("*/kafka/*/results.json")):
        run_dir = results_path.parent
        if run_dir.is_symlink():  # kafka/latest: the same run again
            continue
        data = json.loads(results_path.read_text())
        run = data["run"]
        nodes = int(run["node_count"])
        group = found.setdefault((nodes, _network(run)), Group(nodes, _network(run), _network({**run, "nemesis": None,
                                                                                                 "lose_disk": False})))
        group.runs += 1
        group.valid += data["maelstrom"]["valid"] is True and data["stricter"]["valid"] is True
        group.generators += (data["maelstrom"]["valid"] is False and data["stricter"]["valid"] is True
                             and data["maelstrom"]["anomaly_types"] == ["unseen"]
                             and data["maelstrom"].get("unseen_only_untracked_keys") is True)
        group.ok.append(ok_fraction(data.get("stats", {})))
        group.throughput.append(data.get("perf", {}).get("main_phase_ops_per_s") or 0.0)
        group.failovers += unavailability(run_dir / "history.jsonl", nodes)
        changes = changes_in(run_dir / "node-logs", replicas=min(3, nodes))
        group.leader_changes.append(changes.leader_changes())
        group.in_sync_changes.append(changes.in_sync_changes())
    return sorted(found.values(), key=lambda g: (g.network != g.calm_network, g.network, g.nodes))


def table(found: list[Group]) -> str:
    calm = {(g.nodes, g.network): statistics.mean(g.throughput) for g in found if g.network == g.calm_network}
    lines = ["| nodes | network | runs | both verdicts valid | operations ok (min) | throughput (of calm) | "
             "failover p50 / p99 | leader changes per run | in-sync set changes per run |",
             "|---|---|---|---|---|---|---|---|---|"]
    for g in found:
        mean = statistics.mean(g.throughput)
        baseline = calm.get((g.nodes, g.calm_network)) if g.network != g.calm_network else None
        ratio = f" ({mean / baseline:.2f})" if baseline else ""
        median, p99 = quantile(g.failovers, 0.5), quantile(g.failovers, 0.99)
        failover = "—" if median is None else f"{median * 1000:.0f} / {p99 * 1000:.0f} ms ({len(g.failovers)} kills)"
        quirk = f" (+{g.generators} unseen only where the final polls never asked)" if g.generators else ""
        lines.append(f"| {g.nodes} | {g.network} | {g.runs} | {g.valid} of {g.runs}{quirk} | {min(g.ok) * 100:.2f} % | "
                     f"{mean:.0f} op/s{ratio} | {failover} | {statistics.mean(g.leader_changes):.1f} "
                     f"(max {max(g.leader_changes)}) | {statistics.mean(g.in_sync_changes):.1f} "
                     f"(max {max(g.in_sync_changes)}) |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    found = groups(Path(argv[0] if argv else "store/replication-runs"))
    print(table(found))
    return 0 if all(g.valid + g.generators == g.runs for g in found) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
