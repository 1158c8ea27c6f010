"""Whole runs of our replicated nodes under every fault the runner has (kill, pause, partition, disk
loss, and their mix; 3 and 5 nodes): valid in both verdicts; and a node broken on purpose in one
rule of replication, valid on a calm network and caught under disk loss, so these runs can fail."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from support.logs import stored_messages
from support.runs import Run
from support.scripts import broken_node, installed_script
from support.verdicts import assert_correct_node_verdict

#: Short runs, a fault about every 0.8 s; a request to a node that is down times out in 1 s.
SHORT = ["--time-limit", "4", "--rate", "150", "--recovery-time", "1", "--rpc-timeout", "1"]
FAULTS = [*SHORT, "--nemesis-interval", "0.8", "--nemesis-targets", "one"]


def ours(node_count: int) -> list[str]:
    return ["--node-count", str(node_count), "--bin", installed_script("maelstrom-kafka"), "--", "--db", "{node_id}.db"]


def resumes_leading(node_count: int) -> list[str]:
    """Our node with the new-incarnation rule broken (tests/broken_nodes/resumes_leading.py)."""
    program, *arguments = broken_node("resumes_leading.py", sysconfig.get_paths()["purelib"])
    return ["--node-count", str(node_count), "--bin", program, "--", *arguments, "--db", "{node_id}.db"]


RUNS = {
    "kill-3": [*FAULTS, "--nemesis", "kill", "--seed", "3", *ours(3)],
    "pause-3": [*FAULTS, "--nemesis", "pause", "--seed", "3", *ours(3)],
    "partition-3": [*FAULTS, "--nemesis", "partition", "--seed", "3", *ours(3)],
    # a node killed, its files deleted and started again at once, about every 0.8 s
    "disk-loss-3": [*SHORT, "--restart-every", "0.8", "--lose-disk", "--seed", "3", *ours(3)],
    "disk-loss-5": [*SHORT, "--restart-every", "0.8", "--lose-disk", "--seed", "3", *ours(5)],
    "mix-5": [*FAULTS, "--nemesis", "kill,pause,partition", "--lose-disk", "--seed", "3", *ours(5)],
    "broken-calm": [*SHORT, "--seed", "3", *resumes_leading(3)],
    "broken-disk-loss": [*SHORT, "--restart-every", "0.8", "--lose-disk", "--seed", "3", *resumes_leading(3)],
}


#: Started together once the first of them is needed, after the others have finished: eight
#: runs of three to five nodes at once would starve the tests running beside this module.
SECOND_WAVE = ("disk-loss-3", "disk-loss-5", "broken-calm", "broken-disk-loss")


class _Waves(dict):
    def __getitem__(self, name: str) -> Run:
        if name in SECOND_WAVE:
            for other in SECOND_WAVE:
                if super().__getitem__(other).proc is None:
                    super().__getitem__(other).start()
        return super().__getitem__(name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    started = _Waves({name: Run(flags, tmp_path_factory.mktemp(name), lazy=name in SECOND_WAVE)
                      for name, flags in RUNS.items()})
    yield started
    for run in started.values():
        run.stop()


def node_files(run_dir: Path) -> dict[str, Path]:
    return {path.stem: path for path in (run_dir / "nodes").glob("*/*.db")}


@pytest.mark.parametrize("name", ["kill-3", "pause-3", "partition-3", "mix-5"])
def test_our_nodes_are_valid_under_each_fault_and_their_mix(runs, name):
    done = runs[name].finish()
    assert_correct_node_verdict(done.results, status=done.status, stdout=done.stdout)
    record = done.results["run"]
    faults = (len(record.get("partitions") or []) + (record.get("kills") or {}).get("effective", 0)
              + (record.get("pauses") or {}).get("effective", 0))
    assert faults >= 2, record


@pytest.mark.parametrize(("name", "nodes"), [("disk-loss-3", 3), ("disk-loss-5", 5)])
def test_our_nodes_lose_no_acknowledged_message_when_a_node_loses_its_disk(runs, name, nodes):
    done = runs[name].finish()
    assert_correct_node_verdict(done.results, status=done.status, stdout=done.stdout)
    assert len(done.results["run"]["disk_losses"]) >= 2, done.results["run"]
    files = node_files(done.run_dir)
    assert len(files) == nodes
    if nodes == 3:  # every key is on every node: wiped or not, each holds them all again
        held = {node: set(stored_messages(path)) for node, path in files.items()}
        assert held["n0"] and all(messages == held["n0"] for messages in held.values()), {
            node: len(messages) for node, messages in held.items()}


def test_the_wiped_node_came_back_as_a_follower_and_was_filled_again(runs):
    done = runs["disk-loss-3"].finish()
    logs = {path.stem: path.read_text() for path in (done.run_dir / "node-logs").glob("*.log")}
    restarted = [node for node, log in logs.items() if log.count(f"initialised as {node}") >= 2]
    assert restarted
    for node in restarted:
        assert "applied migration 001_initial" in logs[node].split("SIGKILL", 1)[1], "it started on an empty file"


def test_a_node_that_leads_again_from_a_lost_disk_is_valid_when_calm_and_caught_under_disk_loss(runs):
    calm = runs["broken-calm"].finish()
    assert_correct_node_verdict(calm.results, status=calm.status, stdout=calm.stdout)
    caught = runs["broken-disk-loss"].finish()
    assert caught.status == 1, caught.stdout
    anomalies = set(caught.results["maelstrom"]["anomaly_types"]) | set(caught.results["stricter"]["anomaly_types"])
    assert anomalies & {"lost-write", "unseen", "nonmonotonic-send", "inconsistent-offsets",
                        "committed-offset-regression"}, caught.results["anomaly_types"]
    assert caught.results["maelstrom"]["unseen_only_untracked_keys"] is False
