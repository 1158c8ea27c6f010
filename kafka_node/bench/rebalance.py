"""Row v: leaders spread back after faults. The seed's workload on 3 nodes, one node killed at a time,
with the preferred replica taking its lead back and with --leader-rebalance 0, side by side, read from
each run's logs: who led what at the end, and how long a restarted node took to lead its own partition."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kafka_node.maelstrom.figures import quantile

#: The runner's flags: one node killed at a time, about every 4 s, so that leads move and come back.
#: The recovery pause outlasts the wait before a restarted node takes its lead back, so that the
#: last restart's is seen too.
KILLS = ("--nemesis", "kill", "--nemesis-targets", "one", "--nemesis-interval", "4", "--recovery-time", "5")
NODES = 3

_STAMP = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"
_STARTED = re.compile(_STAMP + r" INFO (n\d+) started \(pid \d+\) and answered init")
_KILLED = re.compile(_STAMP + r" INFO (n\d+) killed \(SIGKILL\)")
_SET = re.compile(_STAMP + r" INFO kafka_node\.replication: partition (\d+): lin-kv set leader=(\S+) epoch=(\d+)")


@dataclass
class Leads:
    """What one run's logs say of its partitions' leaders."""

    #: Partitions led at the end by their preferred replica (the node that led them first), of all.
    preferred_at_end: int = 0
    partitions: int = 0
    #: For each restart after which the node's own partition was led by another: seconds from the
    #: restart until the node led it again (None: it never did before the run ended).
    back_after: list[float | None] = field(default_factory=list)
    #: Changes of leader in lin-kv after every partition first had a leader.
    leader_changes: int = 0

    def as_data(self) -> dict[str, Any]:
        taken = [s for s in self.back_after if s is not None]
        return {**asdict(self), "back_p50_s": quantile(taken, 0.5) if taken else None,
                "back_max_s": max(taken) if taken and None not in self.back_after else None,
                "never_back": self.back_after.count(None)}


def read(run_dir: Path, node_ids: list[str]) -> Leads:
    """The leads of one run, from jepsen.log (starts and kills) and each node's log (lin-kv changes)."""
    starts: list[tuple[datetime, str]] = []
    for line in (run_dir / "jepsen.log").read_text(errors="replace").splitlines():
        if (started := _STARTED.match(line)) is not None:
            starts.append((_when(started[1]), started[2]))
    changes: list[tuple[datetime, int, str, int]] = []
    for log in sorted((run_dir / "node-logs").glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if (change := _SET.match(line)) is not None:
                changes.append((_when(change[1]), int(change[2]), change[3], int(change[4])))
    changes.sort(key=lambda c: (c[1], c[3], c[0]))
    preferred = {pid: node for pid, node in enumerate(sorted(node_ids))}  # partition i is first led by the i-th node
    leads = Leads(partitions=len(preferred))
    leader_at_end = {pid: leader for _, pid, leader, _ in changes}
    leads.preferred_at_end = sum(leader_at_end.get(pid) == node for pid, node in preferred.items())
    first = {pid: min((when for when, p, _, _ in changes if p == pid), default=None) for pid in preferred}
    by_time = sorted(changes)
    leads.leader_changes = sum(1 for before, after in itertools.pairwise(changes)
                               if before[1] == after[1] and before[2] != after[2])
    for when, node in starts:
        pid = next(p for p, n in preferred.items() if n == node)
        began = first[pid]
        if began is None or when <= began:  # the first start: nothing moved yet
            continue
        led_by = [leader for at, p, leader, _ in by_time if p == pid and at <= when]
        if led_by and led_by[-1] == node:
            continue  # it resumed its own lead
        back = next((at for at, p, leader, _ in by_time if p == pid and at > when and leader == node), None)
        leads.back_after.append((back - when).total_seconds() if back is not None else None)
    return leads


def _when(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")


def measure(run_seed: Callable[[str, tuple[str, ...], list[str]], tuple[dict[str, Any] | None, Path | None]],
            progress: Callable[[str], None]) -> dict[str, Any]:
    """Both runs: the figures of each (send p50, messages between servers per operation, leads)."""
    out: dict[str, Any] = {}
    for name, node_flags in (("rebalance-on", []), ("rebalance-off", ["--leader-rebalance", "0"])):
        data, run_dir = run_seed(name, KILLS, node_flags)
        if data is None or run_dir is None:
            continue
        leads = read(run_dir, [f"n{i}" for i in range(NODES)])
        out[name] = {"send_p50_ms": data["perf"]["rpc_latency_ms"].get("send", {}).get("p50"),
                     "msgs_per_op": data["net"]["servers"].get("msgs-per-op"),
                     "throughput": data["perf"]["main_phase_ops_per_s"], **leads.as_data()}
        progress(f"{name}: {leads.preferred_at_end}/{leads.partitions} partitions led by their preferred replica at "
                 f"the end; back after {leads.back_after}")
    return out
