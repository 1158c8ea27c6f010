"""Whole runs of our nodes under Jepsen's db faults (beyond Maelstrom's --nemesis): kills, beside
partitions, whose nodes stay down unanswered until started again, pauses that hold every reply,
and disk loss; each recorded, counted and shaded as Jepsen's nemesis would be."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from typing import Any

import pytest

from kafka_node.maelstrom import plots
from kafka_node.maelstrom.db_nemesis import HIT
from kafka_node.maelstrom.history import Op, read_jsonl

from support.logs import stored_messages
from support.runs import started_together
from support.scripts import installed_script

#: A fault about every 0.75 s through a short run; a request unanswered for 0.5 s times out.
FAULTY = ["--time-limit", "3", "--rate", "100", "--recovery-time", "0.5", "--nemesis-interval", "0.75",
          "--rpc-timeout", "0.5"]


def ours(node_count: int) -> list[str]:
    return ["--node-count", str(node_count), "--bin", installed_script("maelstrom-kafka"), "--", "--db", "{node_id}.db"]


#: Seed 8's db package (on three nodes) first takes n1 down (or pauses it) for about 1.5 s,
#: then n0 from about 2 s to the end of the main phase, whatever partitions come beside; on
#: one node, seed 1 kills n0 at once and again at about 1.3 s, with a log behind it by then.
RUNS = {
    "kill-partition": [*FAULTY, "--nemesis", "kill,partition", "--seed", "8", *ours(3)],
    "pause": [*FAULTY, "--nemesis", "pause", "--seed", "8", *ours(3)],
    "lose-disk": [*FAULTY, "--nemesis", "kill", "--lose-disk", "--seed", "1", *ours(1)],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    with started_together(RUNS, tmp_path_factory) as started:
        yield started


def nemesis_pairs(ops: list[Op]) -> list[tuple[Op, Op]]:
    nemesis = [op for op in ops if op.process == "nemesis"]
    pairs = list(zip(nemesis[::2], nemesis[1::2], strict=True))
    assert all(asked.f == done.f and asked.type == done.type == "info" for asked, done in pairs), (
        "one nemesis process: each invocation followed by its own completion")
    return pairs


def fault_windows(ops: list[Op], fault: str, recovery: str) -> list[tuple[str, int, int]]:
    """(node, from, until) in ns: from a fault's completion that hit the node to the invocation
    of the recovery that came next."""
    windows, since = [], {}
    for asked, done in nemesis_pairs(ops):
        if done.f == fault:
            since |= {node: done.time for node, what in done.value.items() if what in HIT}
        elif done.f == recovery:
            windows += [(node, began, asked.time) for node, began in since.items()]
            since = {}
    return windows


def client_pairs(ops: list[Op]) -> list[tuple[Op, Op]]:
    invoked: dict[int, Op] = {}
    found = []
    for op in ops:
        if type(op.process) is int:
            if op.type == "invoke":
                invoked[op.process] = op
            elif op.f != "crash":
                found.append((invoked.pop(op.process), op))
    return found


def test_kills_and_starts_alternate_and_the_final_generator_starts_every_node(runs):
    done = runs["kill-partition"].finish()
    ops = read_jsonl(done.run_dir / "history.jsonl")
    pairs = [(asked, completed) for asked, completed in nemesis_pairs(ops) if asked.f in ("kill", "start")]
    fs = [asked.f for asked, _ in pairs]
    assert fs[0] == "kill" and fs[-1] == "start" and all(a != b for a, b in itertools.pairwise(fs))
    for asked, completed in pairs:
        if asked.f == "kill":
            assert asked.value in ("one", "minority-third", "minority", "majority", "all", None)
            assert set(completed.value.values()) <= {"killed"}
        else:
            assert asked.value == "all" and set(completed.value) == {"n0", "n1", "n2"}
            assert set(completed.value.values()) <= {"started", "already-running"}
    phases = done.results["run"]["phases"]
    assert phases["main"] + 3 <= round(pairs[-1][1].time / 1e9, 3) <= phases["recovery"], "the final start, before recovery"
    kills = done.results["run"]["kills"]
    assert kills["count"] == fs.count("kill") and kills["effective"] >= 2 and kills["dropped_messages"] > 0
    assert all(period["end"] is not None for period in kills["periods"])
    assert "kills: " in done.stdout and "all started again before the recovery pause" in done.stdout
    assert "kills " in (done.run_dir / "jepsen.log").read_text(), "the progress line counts them"


def test_a_killed_node_comes_back_with_a_second_init(runs):
    done = runs["kill-partition"].finish()
    killed = {node for period in done.results["run"]["kills"]["periods"] for node in period["nodes"]}
    assert killed
    for node in killed:
        log = (done.run_dir / "node-logs" / f"{node}.log").read_text()
        assert log.count(f"initialised as {node}") >= 2 and "SIGKILL" in log, node


def test_requests_to_a_killed_node_are_never_answered_and_time_out(runs):
    done = runs["kill-partition"].finish()
    ops = read_jsonl(done.run_dir / "history.jsonl")
    windows = fault_windows(ops, "kill", "start")
    checked = 0
    for invocation, completion in client_pairs(ops):
        if any(node == invocation.node and began < invocation.time < until for node, began, until in windows):
            checked += 1
            assert completion.type == ("fail" if completion.f == "assign" else "info"), completion
            assert completion.error.startswith("timeout") and "is down" in completion.error, completion
            assert completion.time - invocation.time >= 0.45e9, "the client waited out its timeout"
    assert checked >= 2, "some requests went to a node while it was down"
    assert not any(op.error and op.error.startswith("node lost") for op in ops), "a down node is not an error"


def test_a_paused_node_answers_nothing_until_it_is_resumed(runs):
    done = runs["pause"].finish()
    ops = read_jsonl(done.run_dir / "history.jsonl")
    windows = fault_windows(ops, "pause", "resume")
    assert windows
    timed_out = answered_after = 0
    for invocation, completion in client_pairs(ops):
        for node, began, until in windows:
            if node == invocation.node and began < invocation.time < until:
                assert not (completion.type == "ok" and completion.time < until), ("answered while paused", completion)
                timed_out += completion.type != "ok" and completion.error.startswith("timeout")
                answered_after += completion.type == "ok"
    assert timed_out >= 2 and answered_after >= 1, "requests waited in the paused node's stdin"
    pauses = done.results["run"]["pauses"]
    assert pauses["effective"] >= 1 and "pauses: " in done.stdout
    log = (done.run_dir / "node-logs" / "n1.log").read_text()
    assert log.index("SIGSTOP") < log.index("SIGCONT")


def test_kills_beside_partitions_are_both_recorded_and_both_end_before_the_recovery(runs):
    done = runs["kill-partition"].finish()
    ops = read_jsonl(done.run_dir / "history.jsonl")
    fs = [asked.f for asked, _ in nemesis_pairs(ops)]
    assert {"start-partition", "stop-partition", "kill", "start"} <= set(fs)
    assert fs[-2:] == ["stop-partition", "start"], "the final generators: heal, then start every node"
    run = done.results["run"]
    assert run["nemesis"] == "partition,kill" and run["partitions"]["count"] >= 1 and run["kills"]["count"] >= 1
    assert "partitions: " in done.stdout and "kills: " in done.stdout
    assert {period.name for period in plots.nemesis_periods(ops)} == {"partition", "kill"}
    page = (done.run_dir / "timeline.html").read_text()
    shaded = set(re.findall(r'class="period" style="top:\d+px;height:\d+px;background:(#\w+)"', page))
    assert shaded == {color for name, _, _, color in plots.NEMESES if name in ("partition", "kill")}
    assert all((done.run_dir / name).exists() for name in ("latency-raw.png", "rate.png"))


def test_a_history_with_kills_is_judged_again_with_the_same_verdict(runs):
    done = runs["kill-partition"].finish()
    again = subprocess.run([installed_script("maelstrom-kafka-test"), "check", str(done.run_dir / "history.edn"),
                            "--json"], capture_output=True, text=True, timeout=120)
    judged = json.loads(again.stdout)
    assert again.returncode == done.status
    for field in ("valid", "validity", "maelstrom", "stricter", "anomaly_counts", "stats"):
        assert judged.get(field) == done.results.get(field), field
    assert ':f :kill :value {"n' in (done.run_dir / "history.edn").read_text()


def sends_by_value(ops: list[Op]) -> dict[tuple[str, Any], Op]:
    return {(op.value["key"], op.value["msg"]): op for op in ops if op.f == "send" and op.type == "invoke"}


def test_disk_loss_deletes_the_nodes_file_before_it_starts_again(runs):
    done = runs["lose-disk"].finish()
    ops = read_jsonl(done.run_dir / "history.jsonl")
    kills = [completed for asked, completed in nemesis_pairs(ops) if asked.f == "kill" and completed.value]
    assert kills and all(completed.value == {"n0": "killed-files-lost"} for completed in kills)
    losses = done.results["run"]["disk_losses"]
    assert losses["count"] == len(kills) and losses["files_deleted"] >= 1
    assert all(loss["node"] == "n0" and loss["by"] == "the kill nemesis" for loss in losses["losses"])
    assert all(period["files_lost"] for period in done.results["run"]["kills"]["periods"] if period["nodes"])
    last_loss = kills[-1].time
    acked_before = [op for op in ops if op.f == "send" and op.type == "ok" and op.time < last_loss]
    assert acked_before, "the node had acknowledged sends before it lost its disk"
    sent = sends_by_value(ops)
    stored = stored_messages(done.run_dir / "nodes" / "n0" / "n0.db")
    assert all(sent[key, msg].time > last_loss for (key, _), msg in stored.items()), (
        "the file holds only what was sent after the last loss")
    assert "disk losses (--lose-disk): " in done.stdout
    assert "its files were lost" in (done.run_dir / "node-logs" / "n0.log").read_text()
