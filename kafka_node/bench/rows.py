"""The table `make bench` writes: one row per figure, each beside its baseline from the same run
and held to its goal (`goals`), built from everything the suite measured."""

from __future__ import annotations

from typing import Any

from kafka_node.bench import goals
from kafka_node.bench.report import Row, Target
from kafka_node.bench.suite import OTHER_IN_FLIGHT, OVERTAKING_MEAN_MS, OVERTAKING_RATES, SEED_RPCS, Outcome, median
from kafka_node.maelstrom.figures import quantile


def table(outcome: Outcome) -> list[Row]:
    """Every row, in the table's order; a figure that was not measured shows as a dash."""
    figures = _Figures(outcome)
    return [*_seed_rows(figures), *_load_rows(figures), *_one_in_flight_rows(figures), *_cluster_rows(figures),
            *_fault_rows(figures), *_runner_rows(figures), *_catch_up_rows(figures),
            *_rebalance_rows(figures), *_scale_rows(figures)]


class _Figures:
    """Medians of what the suite measured, by load and RPC."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.fsync_ms = median(outcome.fsync_ms)
        self.ours_seed = outcome.seed.get("ours", {}).get("rpc_latency_ms", {})
        self.trivial_seed = outcome.seed.get("trivial", {}).get("rpc_latency_ms", {})

    def throughput(self, name: str) -> float | None:
        return median([r.throughput for r in self.outcome.loads.get(name, [])])

    def latency(self, name: str, rpc: str, field_name: str = "p50_ms") -> float | None:
        summaries = [r.latency[rpc] for r in self.outcome.loads.get(name, []) if rpc in r.latency]
        return median([getattr(summary, field_name) for summary in summaries])

    def memory(self, name: str, which: str) -> float | None:
        """The highest reading of any round, in MiB."""
        readings = [getattr(r.node_memory, which) for r in self.outcome.loads.get(name, []) if r.node_memory]
        return max(readings) / 1024 if readings else None

    def plus_fsync(self, base: float | None, slack: float) -> float | None:
        return None if base is None or self.fsync_ms is None else base + self.fsync_ms + slack


def _at_most(value: float | None, text: str) -> Target:
    return Target(on="measured", bound="<=", value=value, text=text + (f" = {value:.2f} ms" if value else ""))


def _ratio(bound: Any, value: float) -> Target:
    return Target(on="ratio", bound=bound, value=value, text=f"ratio {bound} {value:g}")


def _report() -> Target:
    return Target(on="measured", text="report it")


def _seed_rows(f: _Figures) -> list[Row]:
    """a: the seed's workload through the runner, beside the runner's own floor (the trivial
    node): a durable write at most that floor, one fsync and a little; a read at most 1.3x it."""
    rows = []
    for rpc in SEED_RPCS:
        trivial = f.trivial_seed.get(rpc, {}).get("p50")
        if rpc in goals.WRITES:
            target = _at_most(f.plus_fsync(trivial, goals.SEED_WRITE_SLACK_MS),
                              f"<= trivial + one fsync (j) + {goals.SEED_WRITE_SLACK_MS:g} ms")
        else:
            target = _ratio("<=", goals.READ_OVER_TRIVIAL)
        for q in ("p50", "p99"):
            rows.append(Row(id="a", figure=f"seed workload: {rpc} {q}", unit="ms",
                            measured=f.ours_seed.get(rpc, {}).get(q), baseline=f.trivial_seed.get(rpc, {}).get(q),
                            baseline_is="trivial node, same runner", target=target if q == "p50" else _report()))
    return rows


def _load_rows(f: _Figures) -> list[Row]:
    """b-j: throughput under load, the big log, memory, the wide poll, the generator, the fsync."""
    durable = f.throughput("durable")
    rows = [
        Row(id="b", figure="saturation: durable sends/s, 64 in flight", unit="/s",
            measured=durable, baseline=f.throughput("trivial"), baseline_is="trivial node",
            target=Target(on="measured", bound=">=", value=goals.SATURATION_PER_S, text=f">= {goals.SATURATION_PER_S:,} /s")),
        Row(id="b", figure="saturation against the naive node (stdlib sqlite3, a transaction and fsync per request)",
            unit="/s", measured=durable, baseline=f.throughput("naive"), baseline_is="naive node, 64 in flight",
            target=_ratio(">=", goals.OVER_NAIVE_UNDER_LOAD)),
        Row(id="c", figure="saturation relative to durability off, 64 in flight", unit="/s",
            measured=durable, baseline=f.throughput("durability-off"), baseline_is="--durability off",
            target=_ratio(">=", goals.DURABLE_OVER_OFF)),
    ]
    rows += [Row(id="c", figure=f"the same, {n} in flight", unit="/s", measured=f.throughput(f"durable-{n}"),
                 baseline=f.throughput(f"durability-off-{n}"), baseline_is="--durability off", target=_report())
             for n in OTHER_IN_FLIGHT]
    rows += [
        Row(id="d", figure="group commit's gain: saturation vs one transaction per request", unit="/s",
            measured=durable, baseline=f.throughput("max-batch-1"), baseline_is="--max-batch 1",
            target=Target(on="ratio", text="report it (expect ratio > 10)")),
        Row(id="e", figure="send/poll/commit requests/s, 10 M stored messages, over all its 100,000 keys",
            unit="/s", measured=f.throughput("10M-messages"), baseline=f.throughput("1k-messages"),
            baseline_is="1,000 messages, over its 10 keys",
            target=_ratio(">=", goals.BIG_LOG_OVER_SMALL)),
        Row(id="e", figure="the same over keys 0-9 only (same keys as the baseline)",
            unit="/s", measured=f.throughput("10M-messages-10-keys"), baseline=f.throughput("1k-messages"),
            baseline_is="1,000 messages, over its 10 keys",
            target=_ratio(">=", goals.BIG_LOG_OVER_SMALL)),
        Row(id="f", figure="start-up to init_ok, 10 M stored messages (median)", unit="ms",
            measured=median(f.outcome.starts_ms.get("10M", [])), baseline=median(f.outcome.starts_ms.get("empty", [])),
            baseline_is="empty file",
            target=Target(on="measured", bound="<=", value=goals.STARTUP_MS, text=f"<= {goals.STARTUP_MS} ms")),
    ]
    for which, label in (("peak_kib", "VmHWM"), ("now_kib", "VmRSS")):
        rows.append(Row(
            id="g", figure=f"resident memory, 10 M messages, under the load of e (all keys): {label}", unit="MiB",
            measured=f.memory("10M-messages", which), baseline=f.memory("1k-messages", which),
            baseline_is="1,000 messages",
            target=Target(on="measured", bound="<=", value=goals.MEMORY_MIB, text=f"<= {goals.MEMORY_MIB} MiB"),
            also=[_ratio("<=", goals.MEMORY_GROWTH_ALLOWED)],
        ))
    rows += [
        Row(id="h", figure="one poll naming 2,000 keys x 16 messages: median", unit="ms",
            measured=f.latency("poll-2000-keys", "poll"), baseline=f.latency("poll-1-key", "poll"),
            baseline_is="poll naming 1 key",
            target=Target(on="measured", bound="<=", value=goals.WIDE_POLL_MS, text=f"<= {goals.WIDE_POLL_MS} ms")),
        Row(id="h", figure="one poll naming 2,000 keys x 16 messages: p99", unit="ms",
            measured=f.latency("poll-2000-keys", "poll", "p99_ms"), baseline=f.latency("poll-1-key", "poll", "p99_ms"),
            baseline_is="poll naming 1 key", target=_report()),
        Row(id="i", figure="the generator's ceiling: sends/s against the trivial node", unit="/s",
            measured=f.throughput("trivial"), baseline=durable, baseline_is="row b, our node",
            target=Target(on="ratio", bound=">=", value=goals.GENERATOR_HEADROOM,
                          text=f"ratio >= {goals.GENERATOR_HEADROOM:g} (not the bottleneck)")),
        Row(id="j", figure="fsync of a small WAL append (2 frames): the floor of a durable ack, p50",
            unit="ms", measured=f.fsync_ms, baseline=None, baseline_is="", target=_report()),
    ]
    return rows


def _one_in_flight_rows(f: _Figures) -> list[Row]:
    """m: each RPC with one request in flight against the trivial node; n: durable, against the
    naive node, and a lone durable send against the trivial node plus one fsync."""
    rows = []
    for rpc in (*goals.WRITES, *goals.READS):
        bound = goals.WRITE_OVER_TRIVIAL if rpc in goals.WRITES else goals.READ_OVER_TRIVIAL
        rows.append(Row(id="m", figure=f"one in flight, --durability off: {rpc} p50", unit="ms",
                        measured=f.latency("one-off", rpc), baseline=f.latency("one-trivial", rpc),
                        baseline_is="trivial node", target=_ratio("<=", bound)))
    rows += [Row(id="m", figure=f"one in flight, durable: {rpc} p50", unit="ms",
                 measured=f.latency("one-durable", rpc), baseline=f.latency("one-trivial", rpc), baseline_is="trivial node",
                 target=_ratio("<=", goals.READ_OVER_TRIVIAL))
             for rpc in goals.READS]
    rows += [Row(id="n", figure=f"one in flight, durable: {rpc} p50", unit="ms",
                 measured=f.latency("one-durable", rpc), baseline=f.latency("one-naive", rpc), baseline_is="naive node",
                 target=_ratio("<=", goals.OVER_NAIVE))
             for rpc in (*goals.WRITES, *goals.READS)]
    trivial_send = f.latency("one-trivial", "send")
    rows.append(Row(id="n", figure="one durable send in flight: p50", unit="ms", measured=f.latency("one-durable", "send"),
                    baseline=trivial_send, baseline_is="trivial node",
                    target=_at_most(f.plus_fsync(trivial_send, goals.LONE_SEND_SLACK_MS),
                                    f"<= trivial + one fsync (j) + {goals.LONE_SEND_SLACK_MS:g} ms")))
    return rows


def _cluster_rows(f: _Figures) -> list[Row]:
    """k: challenge 5b's goals on two nodes; l: the same figures on three and five."""
    runs = f.outcome.cluster
    one_node = f.ours_seed.get("send", {}).get("p50")

    def send_p50(name: str) -> float | None:
        perf: dict[str, Any] = runs.get(name, {}).get("perf") or {}
        return perf.get("rpc_latency_ms", {}).get("send", {}).get("p50")

    def server_msgs(name: str) -> float | None:
        net: dict[str, Any] = runs.get(name, {}).get("net") or {}
        return net.get("servers", {}).get("msgs-per-op")

    def anomalies(name: str) -> float | None:
        return float(len(runs[name]["unexplained_anomaly_types"])) if name in runs else None

    bound = None if one_node is None else one_node + goals.FORWARD_ROUND_TRIP_MS
    rows = [
        Row(id="k", figure="5b, 2 nodes: send p50", unit="ms", measured=send_p50("ours-2-nodes"),
            baseline=one_node, baseline_is="row a, 1 node",
            target=_at_most(bound, f"<= 1 node + {goals.FORWARD_ROUND_TRIP_MS:g} ms")),
        Row(id="k", figure="5b, 2 nodes: messages between servers per op", unit="",
            measured=server_msgs("ours-2-nodes"), baseline=None, baseline_is="",
            target=Target(on="measured", bound="<=", value=goals.SERVER_MSGS_PER_OP, text=f"<= {goals.SERVER_MSGS_PER_OP:g}")),
        Row(id="k", figure="5b, 2 nodes, one killed and restarted about every 2 s: anomaly types (both verdicts)",
            unit="", measured=anomalies("ours-2-nodes-restarting"), baseline=None, baseline_is="",
            target=Target(on="measured", bound="<=", value=0, text="0 (valid)")),
    ]
    one_copy_200 = send_p50("ours-3-nodes-one-copy-200")
    rows += [
        Row(id="l", figure="3 nodes, 3 replicas: send p50", unit="ms", measured=send_p50("ours-3-nodes"),
            baseline=send_p50("ours-3-nodes-one-copy"), baseline_is="3 nodes, one copy per key",
            target=_ratio("<=", goals.REPLICATED_SEND_OVER_ONE_COPY)),
        Row(id="l", figure="3 nodes, 3 replicas, 200 op/s (nothing queues): send p50", unit="ms",
            measured=send_p50("ours-3-nodes-200"), baseline=one_copy_200, baseline_is="3 nodes, one copy per key, 200 op/s",
            target=_at_most(None if one_copy_200 is None else one_copy_200 + goals.REPLICATION_SEND_MS,
                            f"<= one copy + {goals.REPLICATION_SEND_MS:g} ms")),
        Row(id="l", figure="3 nodes, 3 replicas: messages between servers per op", unit="",
            measured=server_msgs("ours-3-nodes"), baseline=server_msgs("ours-3-nodes-one-copy"),
            baseline_is="3 nodes, one copy per key",
            target=Target(on="measured", bound="<=", value=goals.REPLICATED_SERVER_MSGS_PER_OP,
                          text=f"<= {goals.REPLICATED_SERVER_MSGS_PER_OP:g}")),
        Row(id="l", figure="5 nodes, 3 replicas: send p50", unit="ms", measured=send_p50("ours-5-nodes"),
            baseline=one_node, baseline_is="row a, 1 node", target=_report()),
        Row(id="l", figure="5 nodes, 3 replicas: messages between servers per op", unit="",
            measured=server_msgs("ours-5-nodes"), baseline=None, baseline_is="", target=_report()),
    ]
    return rows


def _fault_rows(f: _Figures) -> list[Row]:
    """p: throughput and q: operations ok under each fault, beside the calm run, and validity;
    r: how long a partition goes without an acknowledged send once a node is killed."""
    runs = f.outcome.faults
    calm = runs.get("calm", {})
    rows = []
    for name, label in (("kill", "a node killed about every 4 s, down about 4 s"),
                        ("pause", "a node paused about every 4 s, for about 4 s"),
                        ("partition", "partitions (Maelstrom's nemesis)"),
                        ("disk-loss", "a node's disk lost about every 3 s"),
                        ("disk-loss-5-nodes", "5 nodes, a node's disk lost about every 3 s")):
        run = runs.get(name, {})
        throughput_target = (_ratio(">=", goals.KILL_THROUGHPUT_OVER_CALM) if name == "kill" else _report())
        ok_target = (Target(on="measured", bound=">=", value=goals.PARTITION_OK_FRACTION * 100,
                            text=f">= {goals.PARTITION_OK_FRACTION * 100:g} %") if name == "partition" else _report())
        anomalies = run.get("unexplained_anomaly_types")
        rows += [
            Row(id="p", figure=f"3 replicas, {label}: throughput", unit="op/s", measured=run.get("throughput"),
                baseline=calm.get("throughput"), baseline_is="calm run, 3 nodes", target=throughput_target),
            Row(id="q", figure=f"3 replicas, {label}: operations ok", unit="%", measured=_percent(run.get("ok_fraction")),
                baseline=_percent(calm.get("ok_fraction")), baseline_is="calm run, 3 nodes", target=ok_target),
            Row(id="q", figure=f"3 replicas, {label}: anomaly types (both verdicts)", unit="",
                measured=None if anomalies is None else float(len(anomalies)), baseline=None, baseline_is="",
                target=Target(on="measured", bound="<=", value=0, text="0 (valid)")),
        ]
    gaps = [gap for name in ("kill", "disk-loss") for gap in runs.get(name, {}).get("unavailable_s", [])]
    for q, label in ((0.5, "median"), (0.99, "p99")):
        value = quantile(gaps, q)
        rows.append(Row(id="r", figure=f"a node killed: longest wait for a partition's next acknowledged send, {label}",
                        unit="ms", measured=None if value is None else value * 1000, baseline=None,
                        baseline_is=f"{len(gaps)} kills", target=_report()))
    return rows


def _percent(fraction: float | None) -> float | None:
    return None if fraction is None else fraction * 100


def _runner_rows(f: _Figures) -> list[Row]:
    """s: the Maelstrom runner drives far more than the seed's rate (row a's run of our node is
    the baseline); t: how often its delivery queues let a message be overtaken, beside one timer
    per message (the runner before Maelstrom's queues), and what client requests wait."""
    runner = f.outcome.runner
    seed_rate = f.outcome.seed.get("ours", {}).get("main_phase_ops_per_s")
    rows = [Row(id="s", figure=f"the runner's ceiling: op/s against the trivial node, {clients} clients", unit="op/s",
                measured=runner.get(f"ceiling_{clients}_clients"), baseline=seed_rate,
                baseline_is="row a: our node at the seed's rate",
                target=_ratio(">=", goals.RUNNER_HEADROOM) if clients == 2 else _report())
            for clients in (2, 16)]
    for dist in ("constant", "exponential"):
        for rate in OVERTAKING_RATES:
            measured = runner.get(f"overtaking_{dist}_{rate:g}") or {}
            rows.append(Row(
                id="t", figure=f"messages overtaken, {dist} {OVERTAKING_MEAN_MS} ms, {rate:g}/s on one pair",
                unit="%", measured=_percent(measured.get("overtaken_fraction")),
                baseline=_percent(measured.get("independent_timers_fraction")),
                baseline_is="one timer per message", target=_report()))
            rows.append(Row(
                id="t", figure=f"a client request's mean wait behind those draws, {dist} {rate:g}/s", unit="ms",
                measured=measured.get("client_wait_mean_ms"), baseline=None, baseline_is="", target=_report()))
    return rows


def _catch_up_rows(f: _Figures) -> list[Row]:
    """u: a follower that lost its disk, its partition's leader holding 1 M messages: how fast it is
    refilled while the seed's workload runs, when it is back in sync, and sends meanwhile against calm."""
    run = f.outcome.catch_up
    label = "3 replicas, a follower's disk lost, 1 M messages in its partition"
    return [
        Row(id="u", figure=f"{label}: messages/s of its catch-up", unit="/s", measured=run.get("rate_per_s"),
            baseline=None, baseline_is="",
            target=Target(on="measured", bound=">=", value=goals.CATCH_UP_PER_S, text=f">= {goals.CATCH_UP_PER_S:,} /s")),
        Row(id="u", figure=f"{label}: from its start to its return to the in-sync set", unit="s",
            measured=run.get("in_sync_s"), baseline=None, baseline_is="", target=_report()),
        Row(id="u", figure=f"{label}: send p99 meanwhile", unit="ms", measured=run.get("send_p99_ms"),
            baseline=run.get("calm_send_p99_ms"), baseline_is="calm run, the same seconds",
            target=_ratio("<=", goals.CATCH_UP_SEND_P99_OVER_CALM)),
    ]


def _rebalance_rows(f: _Figures) -> list[Row]:
    """v: one node killed at a time on 3 nodes (about every 4 s), each partition's preferred replica
    taking its lead back, beside the same run with --leader-rebalance 0."""
    on, off = f.outcome.rebalance.get("rebalance-on", {}), f.outcome.rebalance.get("rebalance-off", {})
    label = "3 replicas, one node killed at a time"
    return [
        Row(id="v", figure=f"{label}: from a node's restart to its leading its own partition again, max", unit="s",
            measured=on.get("back_max_s"), baseline=None, baseline_is="",
            target=Target(on="measured", bound="<=", value=goals.REBALANCE_BACK_S, text=f"<= {goals.REBALANCE_BACK_S:g} s")),
        Row(id="v", figure=f"{label}: partitions led by their preferred replica at the end", unit="",
            measured=on.get("preferred_at_end"), baseline=off.get("preferred_at_end"),
            baseline_is="--leader-rebalance 0", target=Target(on="measured", bound=">=", value=on.get("partitions"),
                                                               text="all of them")),
        Row(id="v", figure=f"{label}: send p50", unit="ms", measured=on.get("send_p50_ms"),
            baseline=off.get("send_p50_ms"), baseline_is="--leader-rebalance 0", target=_report()),
        Row(id="v", figure=f"{label}: messages between servers per op", unit="", measured=on.get("msgs_per_op"),
            baseline=off.get("msgs_per_op"), baseline_is="--leader-rebalance 0", target=_report()),
    ]


def _scale_rows(f: _Figures) -> list[Row]:
    """w: a follower restarted lacking the same 1,000 messages (and their commits), in a partition of
    100,000 keys, every one with a committed offset, beside the same in a partition of 1,000."""
    many, few = f.outcome.scale.get("keys", {}), f.outcome.scale.get("baseline", {})
    label = "3 replicas, a follower restarted 1,000 messages behind, 100,000 keys in its partition"
    baseline_is = "the same, 1,000 keys"
    return [
        Row(id="w", figure=f"{label}: from its start to its return to the in-sync set", unit="s",
            measured=many.get("in_sync_s"), baseline=few.get("in_sync_s"), baseline_is=baseline_is,
            target=_ratio("<=", goals.SCALE_OVER_FEW_KEYS)),
        Row(id="w", figure=f"{label}: bytes of replicate messages its leader sent it until then", unit="B",
            measured=many.get("bytes_to_it"), baseline=few.get("bytes_to_it"), baseline_is=baseline_is,
            target=_ratio("<=", goals.SCALE_OVER_FEW_KEYS)),
        Row(id="w", figure=f"{label}: the largest of them", unit="B", measured=many.get("largest_message"),
            baseline=few.get("largest_message"), baseline_is=baseline_is, target=_report()),
    ]
