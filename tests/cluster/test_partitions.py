"""Several nodes under --nemesis partition: ours on 3 and 5 files and a lin-kv node stay valid,
one that retries forwards is caught only then, and the nemesis is recorded as Jepsen's."""

from __future__ import annotations

import itertools
import json
import subprocess

import pytest

from kafka_node.maelstrom.history import read_jsonl

from support.runs import started_together
from support.scripts import broken_node, installed_script
from support.verdicts import assert_correct_node_verdict

#: Partitions about every second (each lasting up to two) through a short run at a moderate rate.
PARTITIONED = ["--time-limit", "4", "--rate", "150", "--recovery-time", "0.5", "--nemesis", "partition",
               "--nemesis-interval", "1"]
CALM = ["--time-limit", "4", "--rate", "150", "--recovery-time", "0.5"]


def ours(node_count: int) -> list[str]:
    return ["--node-count", str(node_count), "--bin", installed_script("maelstrom-kafka"), "--",
            "--db", "{dir}/{node_id}.db"]


def broken(node_count: int, script: str) -> list[str]:
    program, *arguments = broken_node(script)
    return ["--node-count", str(node_count), "--bin", program, "--", *arguments]


RUNS = {
    "ours-3": [*PARTITIONED, "--seed", "11", "--availability", "0.5", *ours(3)],
    "ours-5": [*PARTITIONED, "--seed", "12", *ours(5)],
    "cas-3": [*PARTITIONED, "--seed", "13", *broken(3, "cas_lin_kv.py")],
    # Seed 10 draws a ring of majorities (the spec that cuts one way only) first, at about
    # 0.6 s, and again at about 2.5 s (seed 1 did so before kill and pause joined the nemesis
    # package; now its only ring comes at 3 s, too late for a starved run to be caught).
    "retries-3": [*PARTITIONED, "--seed", "10", *broken(3, "retries_forwards.py")],
    "retries-3-calm": [*CALM, "--seed", "10", *broken(3, "retries_forwards.py")],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    with started_together(RUNS, tmp_path_factory) as started:
        yield started


@pytest.mark.parametrize("name", ["ours-3", "ours-5"])
def test_our_nodes_stay_valid_while_partitions_drop_their_messages(runs, name):
    done = runs[name].finish()
    assert_correct_node_verdict(done.results, status=done.status, stdout=done.stdout)
    partitions = done.results["run"]["partitions"]
    assert partitions["cutting"] >= 1 and partitions["dropped_messages"] > 0, partitions
    assert partitions["dropped_messages"] == sum(period["dropped"] for period in partitions["periods"])
    node_count = done.results["run"]["node_count"]
    assert sorted(p.name for p in runs[name].cwd.glob("*.db")) == [f"n{i}.db" for i in range(node_count)]
    servers = done.results["net"]["servers"]
    assert servers["send-count"] - servers["recv-count"] >= partitions["dropped_messages"], (
        "as in Maelstrom, a dropped message is sent but never received")
    assert "messages dropped" in done.stdout


def test_the_fraction_of_operations_that_succeeded_is_checked_when_asked(runs):
    done = runs["ours-3"].finish()
    availability = done.results["availability"]
    ops = read_jsonl(done.run_dir / "history.jsonl")
    invoked = sum(1 for op in ops if op.type == "invoke")
    assert availability["invoked"] == invoked and availability["ok"] == sum(1 for op in ops if op.type == "ok")
    assert availability["ok_fraction"] == round(availability["ok"] / invoked, 6) >= 0.5 and availability["valid"]
    crashes = sum(1 for op in ops if op.f == "crash" and op.type == "invoke")
    assert crashes and availability["ok"] <= invoked - crashes, "a client crash is an invocation that is never ok"
    assert "availability:" in done.stdout


def test_the_nemesis_is_recorded_as_jepsen_records_it_and_heals_before_the_recovery(runs):
    done = runs["ours-3"].finish()
    ops = read_jsonl(done.run_dir / "history.jsonl")
    nemesis = [op for op in ops if op.process == "nemesis"]
    assert nemesis and all(op.type == "info" for op in nemesis)
    assert nemesis[0].f == "start-partition" and nemesis[0].time < 0.1e9 + done.results["run"]["phases"]["main"] * 1e9
    for asked, done_op in zip(nemesis[::2], nemesis[1::2], strict=True):
        assert asked.f == done_op.f
        if asked.f == "start-partition":
            assert asked.value in ("one", "minority-third", "majority", "majorities-ring")
            kind, grudge = done_op.value
            assert kind == "isolated" and set(grudge) == {"n0", "n1", "n2"}
            assert all(set(senders) <= {"n0", "n1", "n2"} - {node} for node, senders in grudge.items())
        else:
            assert (asked.value, done_op.value) == (None, "network-healed")
    fs = [op.f for op in nemesis[::2]]
    main_phase = fs[:-1]  # the last is the final generator's heal, whatever came before it
    assert all(a != b for a, b in itertools.pairwise(main_phase)), "starts and stops alternate"
    last = nemesis[-1]
    assert (last.f, last.value) == ("stop-partition", "network-healed")
    phases, time_limit = done.results["run"]["phases"], done.results["run"]["time_limit"]
    assert phases["main"] + time_limit <= round(last.time / 1e9, 3) <= phases["recovery"], (
        "the final generator's heal: after the main phase, before the recovery pause")
    assert max(op.index for op in nemesis) == last.index, "nothing of the nemesis after the heal"


def test_services_are_never_partitioned(runs):
    """The lin-kv node speaks only to lin-kv: however the nodes are cut off from each other,
    none of its messages is dropped, and it stays valid."""
    done = runs["cas-3"].finish()
    assert_correct_node_verdict(done.results, status=done.status, stdout=done.stdout)
    partitions = done.results["run"]["partitions"]
    assert partitions["cutting"] >= 1 and partitions["dropped_messages"] == 0, partitions
    assert done.results["net"]["servers"]["msg-count"] > 0


def test_a_node_retrying_forwards_is_caught_only_under_partitions(runs):
    calm = runs["retries-3-calm"].finish()
    assert_correct_node_verdict(calm.results, status=calm.status, stdout=calm.stdout)
    done = runs["retries-3"].finish()
    assert done.status == 1, done.stdout
    assert "duplicate" in done.results["maelstrom"]["anomaly_types"], done.stdout
    assert any(period["spec"] == "majorities-ring" and period["dropped"] for period in
               done.results["run"]["partitions"]["periods"]), "the one-way cut is what duplicates"


@pytest.mark.parametrize("name", ["ours-3", "retries-3"])
def test_the_history_edn_of_a_partitioned_run_gets_the_same_verdict(runs, name):
    done = runs[name].finish()
    again = subprocess.run([installed_script("maelstrom-kafka-test"), "check", str(done.run_dir / "history.edn"),
                            "--json"], capture_output=True, text=True, timeout=120)
    judged = json.loads(again.stdout)
    assert again.returncode == done.status
    for field in ("valid", "validity", "maelstrom", "stricter", "anomaly_counts", "stats", "availability"):
        assert judged.get(field) == done.results.get(field), field
