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
from kafka_node.bench import catchup, datasets, faults, fsync, overtaking, rebalance, scale
from kafka_node.bench.child import NodeFailure
from kafka_node.bench.load import LoadResult, LoadSpec, measure_startup, run_load
from kafka_node.bench.report import Row, rows_as_data
from kafka_node.bench.workload import Workload, parse_mix

SEED_TIME_LIMIT = 20.0
QUICK_SEED_TIME_LIMIT = 5.0
SEED_RPCS = ("send", "poll", "commit_offsets", "list_committed_offsets")
#: In-flight counts reported beside row c's 64.
OTHER_IN_FLIGHT = (16, 256)
#: The log sizes compared: big (10 million messages) and small (1,000), keys x messages per key.
BIG_LOG = (100_000, 100)
SMALL_LOG = (10, 100)
#: The log of the wide poll: 2,000 keys of 16 messages, all named by one poll.
WIDE_LOG = (2_000, 16)
IN_FLIGHT = 64
#: The runner's ceiling: maelstrom-kafka-test against the trivial node at this rate, with these clients.
RUNNER_CEILING_RATE = 100_000.0
RUNNER_CEILING_CLIENTS = (2, 16)
RUNNER_CEILING_SECONDS = 5.0
#: Messages per second of one pair whose overtaking is measured, and the mean latency drawn.
OVERTAKING_RATES = (100.0, 500.0)
OVERTAKING_MEAN_MS = 5
#: Runs of the seed's workload on several of our nodes: name, node count, further runner flags, rate.
CLUSTER_RUNS: tuple[tuple[str, int, tuple[str, ...], float], ...] = (
    ("ours-2-nodes", 2, ("--replication-factor", "1"), 1000.0),  # 5b's figures: forwarding, one copy per key
    ("ours-2-nodes-restarting", 2, ("--restart-every", "2"), 1000.0),
    ("ours-3-nodes", 3, (), 1000.0),
    ("ours-3-nodes-one-copy", 3, ("--replication-factor", "1"), 1000.0),
    ("ours-3-nodes-200", 3, (), 200.0),  # nothing queues: what three copies cost a lone send
    ("ours-3-nodes-one-copy-200", 3, ("--replication-factor", "1"), 200.0),
    ("ours-5-nodes", 5, (), 1000.0),
)


@dataclass(frozen=True)
class Settings:
    """What the suite runs and how long each part lasts."""

    node: str  # the node program (ours: it must take --db, --durability and --max-batch)
    runner: str  # maelstrom-kafka-test
    trivial: list[str]  # the command of the trivial node
    naive: list[str]  # the command of the naive node (it is given --db PATH)
    cache_dir: Path
    quick: bool = False
    seed_time_limit: float = SEED_TIME_LIMIT
    load_seconds: float = 3.0
    warmup: float = 0.5
    rounds: int = 3  # loads compared with each other run in turn this many times; the median counts
    starts: int = 7
    wide_polls: int = 50

    @classmethod
    def chosen(cls, node: str, runner: str, trivial: list[str], naive: list[str], cache_dir: Path, quick: bool,
               seed_time_limit: float | None) -> Settings:
        """The full settings, or the shorter ones of --quick; an explicit seed time limit wins."""
        if quick:
            return cls(node, runner, trivial, naive, cache_dir, quick=True,
                       seed_time_limit=seed_time_limit or QUICK_SEED_TIME_LIMIT,
                       load_seconds=2.0, warmup=0.5, rounds=1, starts=5, wide_polls=30)
        return cls(node, runner, trivial, naive, cache_dir, seed_time_limit=seed_time_limit or SEED_TIME_LIMIT)


@dataclass
class Outcome:
    """The table rows and everything measured to fill them."""

    settings: Settings
    rows: list[Row] = field(default_factory=list)
    loads: dict[str, list[LoadResult]] = field(default_factory=dict)  # by name, one per round
    seed: dict[str, Any] = field(default_factory=dict)  # runner perf by node
    cluster: dict[str, Any] = field(default_factory=dict)  # several nodes: run name -> perf, net, validity
    faults: dict[str, Any] = field(default_factory=dict)  # replication under faults: run name -> figures
    catch_up: dict[str, Any] = field(default_factory=dict)  # a wiped follower refilled while serving
    rebalance: dict[str, Any] = field(default_factory=dict)  # leads spread back after kills, and with that off
    scale: dict[str, Any] = field(default_factory=dict)  # a restarted follower brought back among 100,000 keys and 1,000
    runner: dict[str, Any] = field(default_factory=dict)  # the Maelstrom runner's ceiling and its delivery order
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
            "faults": self.faults,
            "catch_up": self.catch_up,
            "rebalance": self.rebalance,
            "scale": self.scale,
            "runner": self.runner,
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
            f"Seed runs: {s.seed_time_limit:g} s at rate 1000; u's two runs {catchup.TIME_LIMIT:g} s each, "
            f"w's {scale.TIME_LIMIT:g} s."
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
        """b, c, d, i, n: durable sends against the default node, durability off, one transaction
        per request, the trivial node and the naive one; c also with 16 and 256 in flight."""
        sends = Workload(mix=parse_mix("send=1"))
        self.load("trivial", self.settings.trivial, sends)
        self.load("naive", [*self.settings.naive, "--db", str(self.work / "naive-64.db")], sends)
        for _ in range(self.settings.rounds):
            self.load("durable", self.ours(self.work / "durable.db"), sends)
            self.load("durability-off", self.ours(self.work / "off.db", "--durability", "off"), sends)
            self.load("max-batch-1", self.ours(self.work / "one.db", "--max-batch", "1"), sends)
            for in_flight in OTHER_IN_FLIGHT:
                self.load(f"durable-{in_flight}", self.ours(self.work / f"durable-{in_flight}.db"), sends,
                          in_flight=in_flight)
                self.load(f"durability-off-{in_flight}", self.ours(self.work / f"off-{in_flight}.db", "--durability", "off"),
                          sends, in_flight=in_flight)

    def one_in_flight(self) -> None:
        """m, n: each RPC with one request in flight (a mix of all four over 10 keys), against
        the trivial node (its polls filled), our node without fsync and durable, and the naive node."""
        mix = Workload(mix=parse_mix("send=1,poll=1,commit=1,list=1"), keys=10)
        for round_ in range(self.settings.rounds):
            self.load("one-trivial", [*self.settings.trivial, "--fill-polls"], mix, in_flight=1)
            self.load("one-off", self.ours(self.work / f"one-off-{round_}.db", "--durability", "off"), mix, in_flight=1)
            self.load("one-durable", self.ours(self.work / f"one-durable-{round_}.db"), mix, in_flight=1)
            self.load("one-naive", [*self.settings.naive, "--db", str(self.work / f"one-naive-{round_}.db")], mix,
                      in_flight=1)

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
        for name, program, node_args in (
            ("ours", self.settings.node, ["--", "--db", str(self.work / "seed.db")]),
            ("trivial", self.trivial_program(), []),
        ):
            began = time.monotonic()
            data = self.seed_run(name, program, node_args)
            perf = data.get("perf") if data else None
            if perf is not None:
                self.outcome.seed[name] = perf
                latency = perf.get("rpc_latency_ms", {})
                progress(f"seed workload, {name}: p50 send {latency.get('send', {}).get('p50')} ms "
                         f"({time.monotonic() - began:.1f} s)")

    def trivial_program(self) -> str:
        """The trivial node (its polls filled) as one program, as the runner's --bin takes it."""
        trivial = self.work / "trivial-node"
        trivial.write_text("#!/bin/sh\nexec " + shlex.join(self.settings.trivial) + ' --fill-polls "$@"\n')
        trivial.chmod(0o755)
        return str(trivial)

    def seed_run(self, name: str, program: str, node_args: list[str], node_count: int = 1,
                 runner_args: tuple[str, ...] = (), rate: float = 1000.0) -> dict[str, Any] | None:
        """One run of the seed's workload; its results.json (None, and a failure, without one)."""
        store = self.work / f"seed-{name}"
        command = [self.settings.runner, "--bin", program, "--node-count", str(node_count), "--concurrency", "2n",
                   "--time-limit", f"{self.settings.seed_time_limit:g}", "--rate", f"{rate:g}",
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

    def fault_workload(self) -> None:
        """p-r: replication under each fault, beside the calm run (`faults`)."""
        def run_seed(name: str, count: int, flags: tuple[str, ...], rate: float) -> tuple[dict[str, Any] | None, Path | None]:
            data = self.seed_run(name, self.settings.node, ["--", "--db", "{node_id}.db"], count, flags, rate)
            return data, (self.work / f"seed-{name}" / "latest").resolve() if data is not None else None
        self.outcome.faults = faults.measure(run_seed, progress, unexplained_anomalies)

    def catch_up_workload(self) -> None:
        """u: a follower that lost its disk refilled by its leader, 1 M messages, while the seed's
        workload runs on 3 nodes, beside the calm run (`catchup`)."""
        self.outcome.catch_up, failures = catchup.measure(self.settings.runner, self.settings.node, self.work,
                                                          self.settings.cache_dir, progress, unexplained_anomalies)
        for failure in failures:
            self.fail(failure)

    def scale_workload(self) -> None:
        """w: a follower restarted behind by 1,000 messages, in a partition of 100,000 keys and
        of 1,000 (`scale`)."""
        self.outcome.scale, failures = scale.measure(self.settings.runner, self.settings.node, self.work,
                                                     self.settings.cache_dir, progress, unexplained_anomalies)
        for failure in failures:
            self.fail(failure)

    def rebalance_workload(self) -> None:
        """v: one node killed at a time on 3 nodes, the preferred replica taking its lead back,
        beside the same with --leader-rebalance 0 (`rebalance`)."""
        def run_seed(name: str, flags: tuple[str, ...], node_flags: list[str]) -> tuple[dict[str, Any] | None, Path | None]:
            data = self.seed_run(name, self.settings.node, ["--", "--db", "{node_id}.db", *node_flags],
                                 rebalance.NODES, flags)
            return data, (self.work / f"seed-{name}" / "latest").resolve() if data is not None else None
        self.outcome.rebalance = rebalance.measure(run_seed, progress)

    def cluster_workload(self) -> None:
        """k, l: the seed's workload on several of our nodes (challenges 5b and 5c), each node
        on its own file, beside row a's run on one node."""
        for name, count, runner_args, rate in CLUSTER_RUNS:
            began = time.monotonic()
            node_args = ["--", "--db", "{node_id}.db"]
            if "--replication-factor" in runner_args:  # a flag of the node's, not the runner's
                node_args += list(runner_args)
                runner_args = ()
            data = self.seed_run(name, self.settings.node, node_args, count, runner_args, rate)
            if data is not None:
                self.outcome.cluster[name] = {"perf": data.get("perf"), "net": data.get("net"),
                                              "valid": data.get("valid"), "anomaly_types": data.get("anomaly_types"),
                                              "unexplained_anomaly_types": unexplained_anomalies(data),
                                              "restarts": len(data.get("run", {}).get("restarts", []))}
                progress(f"cluster, {name}: p50 send {data['perf']['rpc_latency_ms'].get('send', {}).get('p50')} ms, "
                         f"server msgs-per-op {data['net']['servers'].get('msgs-per-op')} "
                         f"({time.monotonic() - began:.1f} s)")


    def runner_workload(self) -> None:
        """s: the runner's own ceiling, against the trivial node at a rate nothing reaches;
        t: messages overtaken on its delivery queues, beside one timer per message."""
        ceiling_seconds = 2.0 if self.settings.quick else RUNNER_CEILING_SECONDS
        for clients in RUNNER_CEILING_CLIENTS:
            data = self.seed_run(f"runner-ceiling-{clients}", self.trivial_program(), [], rate=RUNNER_CEILING_RATE,
                                 runner_args=("--concurrency", str(clients), "--time-limit", f"{ceiling_seconds:g}",
                                              "--recovery-time", "0"))
            if data is not None:
                self.outcome.runner[f"ceiling_{clients}_clients"] = data["perf"]["main_phase_ops_per_s"]
                progress(f"the runner's ceiling with {clients} clients: {data['perf']['main_phase_ops_per_s']} op/s")
        seconds = 4.0 if self.settings.quick else 10.0
        for dist in ("constant", "exponential"):
            for rate in OVERTAKING_RATES:
                measured = overtaking.measure(dist, OVERTAKING_MEAN_MS, rate, seconds)
                self.outcome.runner[f"overtaking_{dist}_{rate:g}"] = measured.as_data()
                progress(f"overtaken, {dist} {OVERTAKING_MEAN_MS} ms at {rate:g}/s: {measured.queued_fraction:.3f} "
                         f"(independent timers {measured.independent_fraction:.3f})")


def run(settings: Settings) -> Outcome:
    """Measure everything, each part even when another failed (`rows.table` makes the table)."""
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kafka-bench-") as work:
        suite = Suite(settings, Path(work))
        for part in (suite.fsync, suite.saturation, suite.one_in_flight, suite.wide_poll, suite.big_log, suite.fsync,
                     suite.seed_workload, suite.runner_workload, suite.cluster_workload, suite.fault_workload,
                     suite.catch_up_workload, suite.rebalance_workload, suite.scale_workload):
            try:
                part()
            except Exception as error:  # one broken part must not hide the others' figures
                suite.fail(f"{part.__name__}: {error!r}")
        suite.outcome.seconds = time.monotonic() - began
        return suite.outcome
