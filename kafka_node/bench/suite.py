"""The suite: every figure of the performance targets measured in one run, each beside its
baseline from the same run (the seed workload through the Maelstrom runner, the rest through
the load generator), as table rows plus every run's details."""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apsw
import msgspec

from kafka_node import __version__
from kafka_node.bench import datasets, fsync
from kafka_node.bench.child import NodeFailure
from kafka_node.bench.load import LoadResult, LoadSpec, measure_startup, run_load
from kafka_node.bench.report import Row, Target, rows_as_data
from kafka_node.bench.workload import Workload, parse_mix

SEED_TIME_LIMIT = 20.0
QUICK_SEED_TIME_LIMIT = 5.0
SEED_RPCS = ("send", "poll", "commit_offsets")
#: The log sizes compared: big (10 million messages) and small (1,000), keys x messages per key.
BIG_LOG = (100_000, 100)
SMALL_LOG = (10, 100)
#: The log of the wide poll: 2,000 keys of 16 messages, all named by one poll.
WIDE_LOG = (2_000, 16)
IN_FLIGHT = 64
#: Memory is "not growing with the log" when the big log's figure is within this factor of the small's.
MEMORY_GROWTH_ALLOWED = 1.25
#: Runs of the seed's workload on several of our nodes: name, node count, further runner flags.
CLUSTER_RUNS: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("ours-2-nodes", 2, ()),
    ("ours-2-nodes-restarting", 2, ("--restart-every", "2")),
    ("ours-3-nodes", 3, ()),
    ("ours-5-nodes", 5, ()),
)
#: 5b's latency goal: a send on two nodes at most one forwarding round trip (ms) slower than on one.
FORWARD_ROUND_TRIP_MS = 0.3
#: 5c's goal: messages between servers per operation, on two nodes.
SERVER_MSGS_PER_OP = 1.5
#: The generator is "not the bottleneck" when its ceiling is at least this many times row b.
GENERATOR_HEADROOM = 2.0


@dataclass(frozen=True)
class Settings:
    """What the suite runs and how long each part lasts."""

    node: str  # the node program (ours: it must take --db, --durability and --max-batch)
    runner: str  # maelstrom-kafka-test
    trivial: list[str]  # the command of the trivial node
    cache_dir: Path
    quick: bool = False
    seed_time_limit: float = SEED_TIME_LIMIT
    load_seconds: float = 3.0
    warmup: float = 0.5
    rounds: int = 3  # loads compared with each other run in turn this many times; the median counts
    starts: int = 7
    wide_polls: int = 50

    @classmethod
    def chosen(cls, node: str, runner: str, trivial: list[str], cache_dir: Path, quick: bool,
               seed_time_limit: float | None) -> Settings:
        """The full settings, or the shorter ones of --quick; an explicit seed time limit wins."""
        if quick:
            return cls(node, runner, trivial, cache_dir, quick=True,
                       seed_time_limit=seed_time_limit or QUICK_SEED_TIME_LIMIT,
                       load_seconds=2.0, warmup=0.5, rounds=1, starts=5, wide_polls=30)
        return cls(node, runner, trivial, cache_dir, seed_time_limit=seed_time_limit or SEED_TIME_LIMIT)


@dataclass
class Outcome:
    """The table rows and everything measured to fill them."""

    settings: Settings
    rows: list[Row] = field(default_factory=list)
    loads: dict[str, list[LoadResult]] = field(default_factory=dict)  # by name, one per round
    seed: dict[str, Any] = field(default_factory=dict)  # runner perf by node
    cluster: dict[str, Any] = field(default_factory=dict)  # several nodes: run name -> perf, net, validity
    starts_ms: dict[str, list[float]] = field(default_factory=dict)
    fsync_ms: list[float] = field(default_factory=list)  # p50s, measured at moments of the run
    failures: list[str] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    seconds: float = 0.0

    def as_data(self) -> dict[str, Any]:
        return {
            "meta": self.meta(),
            "rows": rows_as_data(self.rows),
            "loads": msgspec.to_builtins(self.loads),
            "seed": self.seed,
            "cluster": self.cluster,
            "starts_ms": self.starts_ms,
            "fsync_ms": self.fsync_ms,
            "failures": self.failures,
        }

    def meta(self) -> dict[str, Any]:
        s = self.settings
        return {
            "date": self.started_at.isoformat(timespec="seconds"),
            "seconds": round(self.seconds, 1),
            "quick": s.quick,
            "cores": os.cpu_count(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "sqlite": apsw.sqlite_lib_version(),
            "kafka_node": __version__,
            "seed_time_limit": s.seed_time_limit,
            "load_seconds": s.load_seconds,
            "warmup_seconds": s.warmup,
            "rounds": s.rounds,
            "in_flight": IN_FLIGHT,
        }

    def footnote(self) -> str:
        """The conditions of the run, in a few sentences under the table."""
        s = self.settings
        text = (
            f"Measured {self.started_at:%Y-%m-%d %H:%M} UTC by `maelstrom-kafka-bench suite{' --quick' if s.quick else ''}` "
            f"in {self.seconds:.0f} s on {os.cpu_count()} cores ({platform.machine()}), Python {platform.python_version()}, "
            f"SQLite {apsw.sqlite_lib_version()}. Loads b-e, g, i: {IN_FLIGHT} requests in flight, {s.warmup:g} s warm-up, "
            f"then {s.load_seconds:g} s measured; sends carry an 8-byte string; b-d and e are the median of "
            f"{s.rounds} round{'s' if s.rounds > 1 else ''}, the loads compared taking turns. "
            f"Seed runs: {s.seed_time_limit:g} s at rate 1000."
        )
        rounds = self.loads.get("durable", [])
        node_cpu = [r.node_cpu for r in rounds if r.node_cpu is not None]
        if node_cpu:
            text += (f" During b the node kept {median(node_cpu):.2f} cores busy and the generator "
                     f"{median([r.generator_cpu for r in rounds]):.2f}.")
        return text


def unexplained_anomalies(results: dict[str, Any]) -> list[str]:
    """The anomaly types of a run (results.json), less Maelstrom's own unseen quirk: unseen
    cases all of whose keys no final poll asked for (the verdict says so), which Maelstrom's
    generator causes now and then whatever the node does."""
    quirk = results.get("maelstrom", {}).get("unseen_only_untracked_keys") is True
    return [kind for kind in results.get("anomaly_types") or [] if not (quirk and kind == "unseen")]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def progress(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


class Suite:
    """Runs each measurement in a temporary directory and records what it found."""

    def __init__(self, settings: Settings, work: Path) -> None:
        self.settings = settings
        self.work = work
        self.outcome = Outcome(settings)

    # --- the parts ----------------------------------------------------------------------

    def load(self, name: str, command: list[str], workload: Workload, *, in_flight: int = IN_FLIGHT,
             requests: int | None = None) -> LoadResult | None:
        """One load run, kept under `name`; None (and a failure noted) if it could not be made."""
        s = self.settings
        log = self.work / f"{name}.log"
        spec = LoadSpec(command=command, workload=workload, in_flight=in_flight,
                        duration=None if requests else s.load_seconds, requests=requests,
                        warmup=s.warmup / 2 if requests else s.warmup, stderr_path=str(log))
        os.sync()  # dirty pages of an earlier step must not be written back during this one
        began = time.monotonic()
        try:
            result = run_load(spec)
        except NodeFailure as failure:
            self.fail(f"{name}: {failure}", log)
            return None
        self.outcome.loads.setdefault(name, []).append(result)
        if not result.ok:
            self.fail(f"{name}: {sum(result.errors.values())} wrong replies, {result.unanswered} unanswered: "
                      f"{'; '.join(result.error_examples)}", log)
        progress(f"{name}: {result.throughput:,.0f} requests/s ({time.monotonic() - began:.1f} s)")
        return result

    def fail(self, text: str, log: Path | None = None) -> None:
        if log is not None and log.exists():
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            if tail:
                text += " (node log: " + " | ".join(tail) + ")"
        self.outcome.failures.append(text)
        progress(f"FAILED {text}")

    def ours(self, db: Path, *args: str) -> list[str]:
        return [self.settings.node, "--db", str(db), *args]

    def fsync(self) -> None:
        """j: the fsync of a small WAL append, on the disk the loads use (measured before the
        loads and before the seed runs; the row gives the median of the two)."""
        self.outcome.fsync_ms.append(round(fsync.fsync_p50_ms(self.work), 4))
        progress(f"fsync of a small WAL append: p50 {self.outcome.fsync_ms[-1]:.3f} ms")

    def saturation(self) -> None:
        """b, c, d, i: durable sends against the default node, durability off, one transaction
        per request, and the trivial node."""
        sends = Workload(mix=parse_mix("send=1"))
        self.load("trivial", self.settings.trivial, sends)
        for _ in range(self.settings.rounds):
            self.load("durable", self.ours(self.work / "durable.db"), sends)
            self.load("durability-off", self.ours(self.work / "off.db", "--durability", "off"), sends)
            self.load("max-batch-1", self.ours(self.work / "one.db", "--max-batch", "1"), sends)

    def wide_poll(self) -> None:
        """h: polls naming all 2,000 keys of a log, one at a time, and polls naming one key."""
        keys, per_key = WIDE_LOG
        db = datasets.build_log(self.work / "wide.db", keys, per_key)
        n = self.settings.wide_polls
        self.load("poll-2000-keys", self.ours(db), Workload(mix=parse_mix("poll=1"), keys=keys, poll_keys=keys),
                  in_flight=1, requests=n)
        self.load("poll-1-key", self.ours(db), Workload(mix=parse_mix("poll=1"), keys=keys), in_flight=1, requests=n)

    def big_log(self) -> None:
        """e, f, g: start-up, throughput and memory with 10 million messages and with 1,000.

        The big log is loaded twice: over all its keys (a working set spread over the whole
        file) and over the baseline's ten keys (the same requests, only the log is bigger).
        """
        keys, per_key = BIG_LOG
        cached = self.settings.cache_dir / f"log-{keys}x{per_key}.db"
        began = time.monotonic()
        if not cached.exists():
            progress(f"building the log of {keys * per_key:,} messages in {self.settings.cache_dir} (once)")
        source = datasets.cached_log(self.settings.cache_dir, keys, per_key)
        big_dir = self.work / "big"
        big_dir.mkdir()
        big = datasets.copy_log(source, big_dir)
        progress(f"log of {keys * per_key:,} messages ready ({time.monotonic() - began:.1f} s)")
        small = datasets.build_log(self.work / "small.db", *SMALL_LOG)
        empty = datasets.empty_log(self.work / "empty.db")
        os.sync()
        for name, db in (("empty", empty), ("10M", big)):
            try:
                self.outcome.starts_ms[name] = [round(measure_startup(self.ours(db)), 1)
                                                for _ in range(self.settings.starts)]
            except NodeFailure as failure:
                self.fail(f"start-up on {name}: {failure}")
                continue
            progress(f"start-up with {name}: median {median(self.outcome.starts_ms[name]):.0f} ms")
        mix = parse_mix("send=1,poll=1,commit=1")
        for _ in range(self.settings.rounds):
            self.load("1k-messages", self.ours(small), Workload(mix=mix, keys=SMALL_LOG[0]))
            self.load("10M-messages", self.ours(big), Workload(mix=mix, keys=keys))
            self.load("10M-messages-10-keys", self.ours(big), Workload(mix=mix, keys=SMALL_LOG[0]))

    def seed_workload(self) -> None:
        """a: the seed's Maelstrom workload through maelstrom-kafka-test, against our node and
        against the trivial node (the runner's own floor)."""
        trivial = self.work / "trivial-node"
        trivial.write_text("#!/bin/sh\nexec " + shlex.join(self.settings.trivial)
                           + ' --fill-polls "$@"\n')
        trivial.chmod(0o755)
        for name, program, node_args in (
            ("ours", self.settings.node, ["--", "--db", str(self.work / "seed.db")]),
            ("trivial", str(trivial), []),
        ):
            began = time.monotonic()
            data = self.seed_run(name, program, node_args)
            perf = data.get("perf") if data else None
            if perf is not None:
                self.outcome.seed[name] = perf
                latency = perf.get("rpc_latency_ms", {})
                progress(f"seed workload, {name}: p50 send {latency.get('send', {}).get('p50')} ms "
                         f"({time.monotonic() - began:.1f} s)")

    def seed_run(self, name: str, program: str, node_args: list[str], node_count: int = 1,
                 runner_args: tuple[str, ...] = ()) -> dict[str, Any] | None:
        """One run of the seed's workload; its results.json (None, and a failure, without one)."""
        store = self.work / f"seed-{name}"
        command = [self.settings.runner, "--bin", program, "--node-count", str(node_count), "--concurrency", "2n",
                   "--time-limit", f"{self.settings.seed_time_limit:g}", "--rate", "1000",
                   "--recovery-time", "1", *runner_args, "--store", str(store), *node_args]
        with open(self.work / f"seed-{name}.out", "wb") as out:
            status = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=self.work).returncode
        results = store / "latest" / "results.json"
        if not results.exists():
            self.fail(f"seed workload ({name}): the runner exited {status} without results.json")
            return None
        data: dict[str, Any] = json.loads(results.read_text())
        if name.startswith("ours") and (data.get("aborted") or unexplained_anomalies(data)):
            self.fail(f"seed workload ({name}): the run was not valid: {data.get('aborted') or data.get('anomaly_types')}")
        return data

    def cluster_workload(self) -> None:
        """k, l: the seed's workload on several of our nodes (challenges 5b and 5c), each node
        on its own file, beside row a's run on one node."""
        for name, count, runner_args in CLUSTER_RUNS:
            began = time.monotonic()
            db = str(self.work / name / "{node_id}.db")
            (self.work / name).mkdir()
            data = self.seed_run(name, self.settings.node, ["--", "--db", db], count, runner_args)
            if data is not None:
                self.outcome.cluster[name] = {"perf": data.get("perf"), "net": data.get("net"),
                                              "valid": data.get("valid"), "anomaly_types": data.get("anomaly_types"),
                                              "unexplained_anomaly_types": unexplained_anomalies(data),
                                              "restarts": len(data.get("run", {}).get("restarts", []))}
                progress(f"cluster, {name}: p50 send {data['perf']['rpc_latency_ms'].get('send', {}).get('p50')} ms, "
                         f"server msgs-per-op {data['net']['servers'].get('msgs-per-op')} "
                         f"({time.monotonic() - began:.1f} s)")

    # --- the table ----------------------------------------------------------------------

    def rows(self) -> list[Row]:
        o = self.outcome
        loads = o.loads
        rows: list[Row] = []

        def throughput(name: str) -> float | None:
            return median([r.throughput for r in loads.get(name, [])])

        def latency(name: str, field_name: str) -> float | None:
            summaries = [r.latency["poll"] for r in loads.get(name, []) if "poll" in r.latency]
            return median([getattr(summary, field_name) for summary in summaries])

        def memory(name: str, which: str) -> float | None:
            """The highest reading of any round, in MiB."""
            readings = [getattr(r.node_memory, which) for r in loads.get(name, []) if r.node_memory]
            return max(readings) / 1024 if readings else None

        ours_seed = o.seed.get("ours", {}).get("rpc_latency_ms", {})
        trivial_seed = o.seed.get("trivial", {}).get("rpc_latency_ms", {})
        fsync_ms = median(o.fsync_ms)
        for rpc in SEED_RPCS:
            for q, bound in (("p50", 0.3), ("p99", 1.0)):
                target = Target(on="measured", bound="<=", value=bound, text=f"<= {bound:g} ms")
                trivial = trivial_seed.get(rpc, {}).get(q)
                if (rpc, q) == ("send", "p50"):  # a durable ack: the runner's floor plus one fsync
                    floor = None if trivial is None or fsync_ms is None else trivial + fsync_ms
                    target = Target(on="measured", bound="<=", value=floor,
                                    text="<= trivial + one fsync (j)" + (f" = {floor:.2f} ms" if floor else ""))
                rows.append(Row(
                    id="a", figure=f"seed workload: {rpc} {q}", unit="ms",
                    measured=ours_seed.get(rpc, {}).get(q), baseline=trivial,
                    baseline_is="trivial node, same runner", target=target,
                ))
        durable = throughput("durable")
        rows += [
            Row(id="b", figure="saturation: durable sends/s, 64 in flight", unit="/s",
                measured=durable, baseline=throughput("trivial"), baseline_is="trivial node",
                target=Target(on="measured", bound=">=", value=50_000, text=">= 50,000 /s")),
            Row(id="c", figure="saturation relative to durability off", unit="/s",
                measured=durable, baseline=throughput("durability-off"), baseline_is="--durability off",
                target=Target(on="ratio", bound=">=", value=0.8, text="ratio >= 0.8")),
            Row(id="d", figure="group commit's gain: saturation vs one transaction per request", unit="/s",
                measured=durable, baseline=throughput("max-batch-1"), baseline_is="--max-batch 1",
                target=Target(on="ratio", text="report it (expect ratio > 10)")),
            Row(id="e", figure="send/poll/commit requests/s, 10 M stored messages, over all its 100,000 keys",
                unit="/s", measured=throughput("10M-messages"), baseline=throughput("1k-messages"),
                baseline_is="1,000 messages, over its 10 keys",
                target=Target(on="ratio", bound=">=", value=0.8, text="ratio >= 0.8")),
            Row(id="e", figure="the same over keys 0-9 only (same keys as the baseline)",
                unit="/s", measured=throughput("10M-messages-10-keys"), baseline=throughput("1k-messages"),
                baseline_is="1,000 messages, over its 10 keys",
                target=Target(on="ratio", bound=">=", value=0.8, text="ratio >= 0.8")),
            Row(id="f", figure="start-up to init_ok, 10 M stored messages (median)", unit="ms",
                measured=median(o.starts_ms.get("10M", [])), baseline=median(o.starts_ms.get("empty", [])),
                baseline_is="empty file",
                target=Target(on="measured", bound="<=", value=200, text="<= 200 ms")),
        ]
        for which, label in (("peak_kib", "VmHWM"), ("now_kib", "VmRSS")):
            rows.append(Row(
                id="g", figure=f"resident memory, 10 M messages, under the load of e (all keys): {label}", unit="MiB",
                measured=memory("10M-messages", which), baseline=memory("1k-messages", which),
                baseline_is="1,000 messages",
                target=Target(on="measured", bound="<=", value=64, text="<= 64 MiB"),
                also=[Target(on="ratio", bound="<=", value=MEMORY_GROWTH_ALLOWED,
                             text=f"ratio <= {MEMORY_GROWTH_ALLOWED:g}")],
            ))
        rows += [
            Row(id="h", figure="one poll naming 2,000 keys x 16 messages: median", unit="ms",
                measured=latency("poll-2000-keys", "p50_ms"), baseline=latency("poll-1-key", "p50_ms"),
                baseline_is="poll naming 1 key",
                target=Target(on="measured", bound="<=", value=20, text="<= 20 ms")),
            Row(id="h", figure="one poll naming 2,000 keys x 16 messages: p99", unit="ms",
                measured=latency("poll-2000-keys", "p99_ms"), baseline=latency("poll-1-key", "p99_ms"),
                baseline_is="poll naming 1 key",
                target=Target(on="measured", text="report it")),
            Row(id="i", figure="the generator's ceiling: sends/s against the trivial node", unit="/s",
                measured=throughput("trivial"), baseline=durable, baseline_is="row b, our node",
                target=Target(on="ratio", bound=">=", value=GENERATOR_HEADROOM,
                              text=f"ratio >= {GENERATOR_HEADROOM:g} (not the bottleneck)")),
            Row(id="j", figure="fsync of a small WAL append (2 frames): the floor of a durable ack, p50",
                unit="ms", measured=fsync_ms, baseline=None, baseline_is="",
                target=Target(on="measured", text="report it")),
        ]
        rows += self.cluster_rows(ours_seed)
        return rows

    def cluster_rows(self, ours_seed: dict[str, Any]) -> list[Row]:
        """k: challenge 5b's goals on two nodes; l: the same figures on three and five."""
        runs = self.outcome.cluster
        one_node = ours_seed.get("send", {}).get("p50")

        def send_p50(name: str) -> float | None:
            return runs.get(name, {}).get("perf", {}).get("rpc_latency_ms", {}).get("send", {}).get("p50")

        def server_msgs(name: str) -> float | None:
            return runs.get(name, {}).get("net", {}).get("servers", {}).get("msgs-per-op")

        def anomalies(name: str) -> float | None:
            return float(len(runs[name]["unexplained_anomaly_types"])) if name in runs else None

        bound = None if one_node is None else one_node + FORWARD_ROUND_TRIP_MS
        rows = [
            Row(id="k", figure="5b, 2 nodes: send p50", unit="ms", measured=send_p50("ours-2-nodes"),
                baseline=one_node, baseline_is="row a, 1 node",
                target=Target(on="measured", bound="<=", value=bound,
                              text=f"<= 1 node + {FORWARD_ROUND_TRIP_MS:g} ms" + (f" = {bound:.2f} ms" if bound else ""))),
            Row(id="k", figure="5b, 2 nodes: messages between servers per op", unit="",
                measured=server_msgs("ours-2-nodes"), baseline=None, baseline_is="",
                target=Target(on="measured", bound="<=", value=SERVER_MSGS_PER_OP, text=f"<= {SERVER_MSGS_PER_OP:g}")),
            Row(id="k", figure="5b, 2 nodes, one killed and restarted about every 2 s: anomaly types (both verdicts)",
                unit="",
                measured=anomalies("ours-2-nodes-restarting"), baseline=None, baseline_is="",
                target=Target(on="measured", bound="<=", value=0, text="0 (valid)")),
        ]
        for name, count in (("ours-3-nodes", 3), ("ours-5-nodes", 5)):
            rows += [
                Row(id="l", figure=f"{count} nodes: send p50", unit="ms", measured=send_p50(name),
                    baseline=one_node, baseline_is="row a, 1 node", target=Target(on="measured", text="report it")),
                Row(id="l", figure=f"{count} nodes: messages between servers per op", unit="",
                    measured=server_msgs(name), baseline=None, baseline_is="",
                    target=Target(on="measured", text="report it")),
            ]
        return rows


def run(settings: Settings) -> Outcome:
    """Measure everything; the rows are filled even when some measurement failed."""
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kafka-bench-") as work:
        suite = Suite(settings, Path(work))
        for part in (suite.fsync, suite.saturation, suite.wide_poll, suite.big_log, suite.fsync, suite.seed_workload,
                     suite.cluster_workload):
            try:
                part()
            except Exception as error:  # one broken part must not hide the others' figures
                suite.fail(f"{part.__name__}: {error!r}")
        suite.outcome.seconds = time.monotonic() - began
        suite.outcome.rows = suite.rows()
        return suite.outcome
