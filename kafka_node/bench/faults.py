"""p-r: replication under faults, at the load of the issue's measurements (3 nodes, 500 op/s): the
calm run and one under each fault the runner has, their verdicts, ok fraction and throughput, and
how long a partition goes without an acknowledged send after a node is killed."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka_node.maelstrom import failover
from kafka_node.maelstrom.figures import ok_fraction

#: The load of the fault runs (the issue measured at this rate).
FAULT_RATE = 500.0
#: name, node count, runner flags. A node is killed (or paused) about every 4 s and kept down
#: (or paused) about 4 s; disk loss kills a node, deletes its files and starts it again at once
#: about every 3 s; partitions come at Maelstrom's default interval.
FAULT_RUNS: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("calm", 3, ()),
    ("kill", 3, ("--nemesis", "kill", "--nemesis-targets", "one", "--nemesis-interval", "4")),
    ("pause", 3, ("--nemesis", "pause", "--nemesis-targets", "one", "--nemesis-interval", "4")),
    ("partition", 3, ("--nemesis", "partition")),
    ("disk-loss", 3, ("--restart-every", "3", "--lose-disk")),
    ("disk-loss-5-nodes", 5, ("--restart-every", "3", "--lose-disk")),
)

#: One run of the runner: (name, node count, runner flags, rate) -> results.json and its run directory.
RunSeed = Callable[[str, int, tuple[str, ...], float], tuple[dict[str, Any] | None, Path | None]]


def measure(run_seed: RunSeed, progress: Callable[[str], None], unexplained: Callable[[dict[str, Any]], list[str]]
            ) -> dict[str, Any]:
    """Every fault run's figures, by name."""
    found: dict[str, Any] = {}
    for name, count, flags in FAULT_RUNS:
        began = time.monotonic()
        data, run_dir = run_seed(f"faults-{name}", count, flags, FAULT_RATE)
        if data is None or run_dir is None:
            continue
        found[name] = {
            "throughput": data.get("perf", {}).get("main_phase_ops_per_s"),
            "ok_fraction": ok_fraction(data.get("stats", {})),
            "unexplained_anomaly_types": unexplained(data),
            "unavailable_s": unavailability(run_dir / "history.jsonl", count),
        }
        progress(f"faults, {name}: {found[name]['throughput']} op/s, ok {found[name]['ok_fraction']:.4f} "
                 f"({time.monotonic() - began:.1f} s)")
    return found


def partition_of(key: str, partitions: int) -> int:
    """Our node's documented rule: CRC-32 of the key's UTF-8 bytes, modulo the node count."""
    return zlib.crc32(key.encode("utf-8")) % partitions


def unavailability(history: Path, partitions: int) -> list[float]:
    """For each node killed, the longest any partition went, from the kill's completion, until
    a send to one of its keys was invoked and acknowledged (the partition that node led waits
    for an election or a hand-over; the others hardly at all). Seconds, one per kill."""
    by_key, kills = failover.sends_and_kills(failover.read_history(history))
    acked = [(send.invoked, send.ok_at, partition_of(key, partitions))  # (invoked, completed, partition) of ok sends
             for key, sends in by_key.items() for send in sends if send.ok_at is not None]
    gaps = []
    for killed_at in kills:
        waits = []
        for part in range(partitions):
            after = [done for began, done, p in acked if p == part and began >= killed_at]
            if after:
                waits.append(min(after) - killed_at)
        if len(waits) == partitions:
            gaps.append(max(waits))
    return gaps
