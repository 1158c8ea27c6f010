"""Whole runs of our replicated nodes on a calm network, 2, 3 and 5 of them, under the seed's rate
and with every client's first final poll (every key, from offset 0) at the same instant: both
verdicts valid, and once every partition has all its replicas in sync, no leader and no in-sync set
ever changes (the nodes' logs show every change they made in lin-kv)."""

from __future__ import annotations

import pytest

from kafka_node.maelstrom.history import read_jsonl

from support.leadership_log import changes_in
from support.runs import Run
from support.scripts import installed_script
from support.verdicts import assert_correct_node_verdict

CALM = ["--time-limit", "5", "--recovery-time", "1", "--final-polls-together", "--seed", "7"]
RUNS = {2: "1000", 3: "1000", 5: "500"}  # op/s: five nodes' processes share the machine's two cores


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    started = {nodes: Run([*CALM, "--rate", rate, "--node-count", str(nodes), "--bin", installed_script("maelstrom-kafka"),
                           "--", "--db", "{node_id}.db"], tmp_path_factory.mktemp(f"calm-{nodes}"))
               for nodes, rate in RUNS.items()}
    yield started
    for run in started.values():
        run.stop()


@pytest.mark.parametrize("nodes", list(RUNS))
def test_a_calm_run_changes_no_leader_and_no_in_sync_set(runs, nodes):
    done = runs[nodes].finish()
    assert_correct_node_verdict(done.results, status=done.status, stdout=done.stdout)
    changes = changes_in(done.run_dir / "node-logs", replicas=min(3, nodes))
    assert changes.settled, changes.by_partition
    assert (changes.leader_changes(), changes.in_sync_changes()) == (0, 0), changes.after_settled()


def test_with_final_polls_together_every_clients_first_final_poll_goes_at_once(runs):
    done = runs[3].finish()
    ops = read_jsonl(done.run_dir / "history.jsonl")
    start = min(op.time for op in ops if op.f == "assign" and (op.value or {}).get("seek_to_beginning"))
    first: dict[int, int] = {}
    for op in ops:
        if op.type == "invoke" and op.f == "poll" and op.time >= start:
            first.setdefault(op.process, op.time)
    assert len(first) == 6  # --concurrency 2n on 3 nodes
    assert max(first.values()) - min(first.values()) < 100_000_000, sorted(first.values())  # within 0.1 s (ns)
