"""u: a follower that lost its disk, refilled by its partition's leader while the seed's workload runs
on 3 nodes: how fast it is filled, when it is back in sync, and what sends wait meanwhile, beside a calm run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import apsw

from kafka_node.bench import datasets
from kafka_node.bench.faults import partition_of
from kafka_node.maelstrom import failover
from kafka_node.maelstrom.figures import quantile

#: The leader's log: 1 M messages, 100 for each of 10,000 keys of partition 0 (of 3: keys "u0",
#: "u1", ... that fall in it, none of which the workload sends to), written as the seed's workload
#: writes: ten keys at a time (its generator keeps ten keys active), about a message per batch (a
#: leader's transaction at its rate holds 1.1 on average).
KEYS = 10_000
PER_KEY = 100
PER_BATCH = 1
AT_A_TIME = 10
PARTITIONS = 3
#: n0 leads partition 0 (its first replica), n1 follows it holding the same log, n2 lost its disk.
LEADER, FOLLOWER, WIPED = "n0", "n1", "n2"
#: The main phase of each run: long enough for the catch-up to end within it.
TIME_LIMIT = 15.0
SAMPLE_EVERY = 0.05
#: The leader's log of lin-kv's change it made to the partition, naming the in-sync set.
IN_SYNC_LINE = re.compile(r"partition 0: lin-kv set leader=\S+ epoch=\d+ isr=(\S*)")
PHASE_LINE = re.compile(r" phase (\w+) at ([\d.]+) s$")


def partition_keys(count: int = KEYS, part: int = 0) -> list[str]:
    """The first `count` keys "u0", "u1", ... of partition `part` (our node's rule for 3 nodes)."""
    keys: list[str] = []
    n = 0
    while len(keys) < count:
        if partition_of(key := f"u{n}", PARTITIONS) == part:
            keys.append(key)
        n += 1
    return keys


@dataclass
class Run:
    """One run's results.json, its directory, and the wiped follower's fill as sampled: (wall time,
    the last batch of partition 0 it held)."""

    results: dict[str, Any] | None
    directory: Path | None
    fill: list[tuple[float, int]]


def measure(runner: str, node: str, work: Path, cache_dir: Path, progress: Callable[[str], None],
            unexplained: Callable[[dict[str, Any]], list[str]]) -> tuple[dict[str, Any], list[str]]:
    """The row's figures, and the failures met (a run without results or not valid, a follower
    never back in sync). The calm run first: the same files, n2 holding the log as n1 does."""
    began = time.monotonic()
    source = datasets.cached_partition_log(cache_dir, partition_keys(), PER_KEY, PER_BATCH, AT_A_TIME)
    found: dict[str, Any] = {"log_ready_s": round(time.monotonic() - began, 2)}
    failures: list[str] = []
    runs: dict[str, Run] = {}
    for name, holding in (("calm", (LEADER, FOLLOWER, WIPED)), ("wiped", (LEADER, FOLLOWER))):
        directory = work / f"catch-up-{name}"
        directory.mkdir()
        for node_id in holding:
            datasets.replica_copy(source, directory / f"{node_id}.db")
        os.sync()
        runs[name] = run = _run(runner, node, directory, sample=name == "wiped")
        if run.results is None:
            failures.append(f"catch-up ({name}): the runner left no results.json")
        elif run.results.get("aborted") or unexplained(run.results):
            failures.append(f"catch-up ({name}): the run was not valid: "
                            f"{run.results.get('aborted') or run.results.get('anomaly_types')}")
    wiped, calm = runs["wiped"], runs["calm"]
    if wiped.directory is not None and calm.directory is not None:
        found |= figures(wiped, calm)
        if found.get("in_sync_s") is None:
            failures.append(f"catch-up: {WIPED} was not back in the in-sync set by the end of the run")
    found["seconds"] = round(time.monotonic() - began, 1)
    progress(f"catch-up: {found.get('rate_per_s') or 0:,.0f} messages/s, in sync after {found.get('in_sync_s')} s, "
             f"send p99 {found.get('send_p99_ms')} ms against {found.get('calm_send_p99_ms')} ms calm "
             f"({found['seconds']:.1f} s)")
    return found, failures


def _run(runner: str, node: str, directory: Path, sample: bool) -> Run:
    """The seed's workload on 3 nodes, each on its file in `directory`; with `sample`, the wiped
    follower's file is read every SAMPLE_EVERY s until it holds the leader's whole log."""
    with open(directory / "runner.out", "wb") as out:
        child = subprocess.Popen(seed_command(runner, node, directory, TIME_LIMIT), stdout=out,
                                 stderr=subprocess.STDOUT, cwd=directory)
        fill = _fill(child, directory / f"{WIPED}.db") if sample else []
        child.wait()
    results = directory / "store" / "latest" / "results.json"
    if not results.exists():
        return Run(None, None, fill)
    return Run(json.loads(results.read_text()), results.parent.resolve(), fill)


def seed_command(runner: str, node: str, directory: Path, time_limit: float, *flags: str) -> list[str]:
    """The runner's command for the seed's workload on 3 nodes for `time_limit` s (1 s of recovery),
    each node on its file in `directory`, the run stored in `directory`/store; `flags` added."""
    return [runner, "--bin", node, "--node-count", "3", "--concurrency", "2n", "--time-limit", f"{time_limit:g}",
            "--rate", "1000", "--recovery-time", "1", *flags, "--store", str(directory / "store"), "--", "--db",
            str(directory / "{node_id}.db")]


def _fill(child: subprocess.Popen, path: Path) -> list[tuple[float, int]]:
    """(time, the last batch of partition 0 the file holds) until it holds the whole log, or the run ends."""
    last = KEYS * PER_KEY // PER_BATCH
    fill: list[tuple[float, int]] = []
    conn: apsw.Connection | None = None
    try:
        while child.poll() is None and (not fill or fill[-1][1] < last):
            time.sleep(SAMPLE_EVERY)
            try:
                if conn is None:
                    if not Path(f"{path}-wal").exists():
                        continue  # not opened by the node yet
                    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
                seq = conn.execute("SELECT max(seq) FROM messages WHERE part = 0").get
            except apsw.Error:
                continue  # its schema not made yet, or busy
            fill.append((time.time(), seq or 0))
    finally:
        if conn is not None:
            conn.close()
    return fill


def figures(wiped: Run, calm: Run) -> dict[str, Any]:
    """The catch-up's rate, the time from the wiped follower's start to its return to the in-sync
    set, and send latencies over that window, in both runs (the calm run's over the same seconds
    from its third node's start)."""
    assert wiped.directory is not None and calm.directory is not None
    start, in_sync = started(wiped.directory, WIPED), back_in_sync(wiped.directory, WIPED)
    origin, main_end = phases(wiped.directory)
    end = min(in_sync, main_end) if in_sync is not None else main_end
    sends = send_latencies(wiped.directory, start - origin, end - origin)
    calm_origin, _ = phases(calm.directory)
    calm_start = started(calm.directory, WIPED) - calm_origin
    calm_sends = send_latencies(calm.directory, calm_start, calm_start + end - start)
    return {
        "rate_per_s": fill_rate(wiped.fill, KEYS * PER_KEY // PER_BATCH, PER_BATCH),
        "in_sync_s": None if in_sync is None else round(in_sync - start, 3),
        "window_s": round(end - start, 3),
        "send_p99_ms": _ms(quantile(sends, 0.99)),
        "send_p50_ms": _ms(quantile(sends, 0.5)),
        "sends": len(sends),
        "calm_send_p99_ms": _ms(quantile(calm_sends, 0.99)),
        "calm_send_p50_ms": _ms(quantile(calm_sends, 0.5)),
        "calm_sends": len(calm_sends),
        "fill_samples": len(wiped.fill),
    }


def fill_rate(fill: list[tuple[float, int]], last: int, per_batch: int) -> float | None:
    """Messages per second between the first and the last sample that saw the log partly filled;
    with fewer than two such samples, over the interval from the last empty to the first full one."""
    partly = [(at, seq) for at, seq in fill if 0 < seq < last]
    if len(partly) >= 2:
        (first_at, first), (last_at, last_seq) = partly[0], partly[-1]
    else:
        empty = [at for at, seq in fill if seq == 0]
        full = [at for at, seq in fill if seq >= last]
        if not empty or not full:
            return None
        (first_at, first), (last_at, last_seq) = (empty[-1], 0), (full[0], last)
    return round((last_seq - first) * per_batch / (last_at - first_at)) if last_at > first_at else None


def wall(line: str) -> float:
    """The time of a log line that starts with logging's default asctime (local, to the millisecond)."""
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def phases(run_dir: Path) -> tuple[float, float]:
    """The wall time of the history's zero, and of the end of the main phase (the runner logs each
    phase with its time since the history began)."""
    at: dict[str, tuple[float, float]] = {}
    for line in (run_dir / "jepsen.log").read_text(errors="replace").splitlines():
        if match := PHASE_LINE.search(line):
            at[match.group(1)] = (wall(line), float(match.group(2)))
    main_at, since = at["main"]
    origin = main_at - since
    return origin, origin + at.get("recovery", at["main"])[1]


def started(run_dir: Path, node_id: str) -> float:
    """When the node answered init (its first start)."""
    for line in (run_dir / "jepsen.log").read_text(errors="replace").splitlines():
        if f" {node_id} started (pid " in line:
            return wall(line)
    raise ValueError(f"{run_dir}: {node_id} never started")


def back_in_sync(run_dir: Path, node_id: str) -> float | None:
    """When lin-kv first listed the node in partition 0's in-sync set (as whichever node made that
    change logs it), after its start; None if it never did."""
    since = started(run_dir, node_id)
    times = [wall(line) for log in sorted((run_dir / "node-logs").glob("*.log"))
             for line in log.read_text(errors="replace").splitlines()
             if (match := IN_SYNC_LINE.search(line)) and node_id in match.group(1).split(",")]
    return min((at for at in times if at >= since), default=None)


def send_latencies(run_dir: Path, start: float, end: float) -> list[float]:
    """Seconds from invocation to completion of the sends invoked between `start` and `end`
    (seconds since the history began) that completed ok."""
    by_key, _ = failover.sends_and_kills(failover.read_history(run_dir / "history.jsonl"))
    return [send.ok_at - send.invoked for sends in by_key.values() for send in sends
            if start <= send.invoked <= end and send.ok_at is not None]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
