"""Several of our nodes, one owner per key: the installed `maelstrom-kafka` processes, with
this test carrying each message between them by hand (so that it can also lose, delay or
garble one), and then whole runs of the Maelstrom workload on two and three nodes."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import zlib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from support.logs import stored_messages
from support.node_child import NodeChild
from support.scripts import installed_script
from support.verdicts import assert_correct_node_verdict

IDS = ["n0", "n1"]


def owner(key: str, node_ids: list[str]) -> str:
    """The documented rule: CRC-32 of the key's UTF-8 bytes, over the sorted node ids."""
    ordered = sorted(node_ids)
    return ordered[zlib.crc32(key.encode()) % len(ordered)]


def key_owned_by(node_id: str, node_ids: list[str] = IDS, skip: int = 0) -> str:
    owned = (str(i) for i in itertools.count() if owner(str(i), node_ids) == node_id)
    return next(itertools.islice(owned, skip, None))


class Cluster:
    """Our nodes, each on its own file `{node_id}.db` in one directory, with one copy per key
    (routing is what these tests look at; replication's own are in test_replication); messages
    between them go only when the test relays them."""

    def __init__(self, tmp_path: Path, *flags: str, node_ids: list[str] = IDS) -> None:
        self.tmp_path = tmp_path
        self.flags = flags
        self.node_ids = node_ids
        self.nodes: dict[str, NodeChild] = {}
        self._ids = itertools.count(1)
        for node_id in node_ids:
            self.start(node_id)

    def start(self, node_id: str) -> NodeChild:
        node = NodeChild(["--db", str(self.tmp_path / "{node_id}.db"), "--replication-factor", "1", *self.flags],
                           self.tmp_path / f"{node_id}-{len(self.nodes)}.stderr")
        self.nodes[node_id] = node
        init = self.ask(node_id, {"type": "init", "node_id": node_id, "node_ids": self.node_ids})
        assert init["body"]["type"] == "init_ok", init
        return node

    def send(self, node_id: str, body: dict[str, Any], src: str = "c1") -> int:
        msg_id = next(self._ids)
        self.nodes[node_id].send_message({**body, "msg_id": msg_id}, src=src)
        return msg_id

    def ask(self, node_id: str, body: dict[str, Any], src: str = "c1") -> dict[str, Any]:
        """A request answered by `node_id` alone (nothing to relay)."""
        msg_id = self.send(node_id, body, src)
        reply = self.nodes[node_id].read_message()
        assert reply["dest"] == src and reply["body"]["in_reply_to"] == msg_id, reply
        return reply

    def relay(self, from_id: str) -> dict[str, Any]:
        """Carry the next message `from_id` wrote to the node it is addressed to."""
        message = self.nodes[from_id].read_message()
        assert message["src"] == from_id and message["dest"] in self.nodes, message
        self.nodes[message["dest"]].write(msgspec.json.encode(message) + b"\n")
        return message

    def close(self) -> None:
        for node in self.nodes.values():
            node.cleanup()


@pytest.fixture
def cluster(tmp_path):
    made: list[Cluster] = []

    def make(*flags: str, node_ids: list[str] = IDS) -> Cluster:
        made.append(Cluster(tmp_path, *flags, node_ids=node_ids))
        return made[-1]

    yield make
    for each in made:
        each.close()


def test_a_send_for_a_key_owned_elsewhere_is_forwarded_and_its_reply_relayed(cluster, tmp_path):
    nodes = cluster()
    key = key_owned_by("n1")
    for expected_offset in range(3):
        msg_id = nodes.send("n0", {"type": "send", "key": key, "msg": expected_offset * 10})
        forwarded = nodes.relay("n0")
        assert forwarded["dest"] == "n1" and forwarded["body"]["type"] == "send"
        assert forwarded["body"]["key"] == key
        answer = nodes.relay("n1")
        assert answer["body"] == {"type": "send_ok", "in_reply_to": forwarded["body"]["msg_id"],
                                  "offset": expected_offset}
        reply = nodes.nodes["n0"].read_message()
        assert reply["dest"] == "c1"
        assert reply["body"] == {"type": "send_ok", "in_reply_to": msg_id, "offset": expected_offset}
    # The owner holds the log, dense from 0, and answers its own clients from it.
    polled = nodes.ask("n1", {"type": "poll", "offsets": {key: 0}}, src="c2")
    assert polled["body"]["msgs"] == {key: [[0, 0], [1, 10], [2, 20]]}
    assert len(stored_messages(tmp_path / "n1.db")) == 3
    assert len(stored_messages(tmp_path / "n0.db")) == 0


def test_an_init_again_keeps_the_node_in_its_cluster(cluster):
    nodes = cluster()
    again = nodes.ask("n0", {"type": "init", "node_id": "n0", "node_ids": IDS})
    assert again["body"]["type"] == "init_ok"
    key = key_owned_by("n1")
    msg_id = nodes.send("n0", {"type": "send", "key": key, "msg": 1})
    assert nodes.relay("n0")["dest"] == "n1", "still forwarded to the key's owner"
    nodes.relay("n1")
    assert nodes.nodes["n0"].read_message()["body"] == {"type": "send_ok", "in_reply_to": msg_id, "offset": 0}


def test_a_key_owned_here_is_answered_here_without_a_message_to_another_node(cluster):
    nodes = cluster()
    key = key_owned_by("n0")
    assert nodes.ask("n0", {"type": "send", "key": key, "msg": 1})["body"]["offset"] == 0
    assert nodes.ask("n0", {"type": "poll", "offsets": {key: 0}})["body"]["msgs"] == {key: [[0, 1]]}
    assert nodes.nodes["n0"].no_message_within(0.3)


def test_requests_naming_keys_of_both_owners_are_split_and_answered_once_both_parts_have(cluster):
    nodes = cluster()
    mine, theirs = key_owned_by("n0"), key_owned_by("n1")
    assert nodes.ask("n0", {"type": "send", "key": mine, "msg": "a"})["body"]["offset"] == 0
    assert nodes.ask("n1", {"type": "send", "key": theirs, "msg": "b"})["body"]["offset"] == 0

    msg_id = nodes.send("n0", {"type": "poll", "offsets": {mine: 0, theirs: 0}})
    part = nodes.relay("n0")
    assert part["body"]["type"] == "poll" and part["body"]["offsets"] == {theirs: 0}, "only the other owner's keys"
    nodes.relay("n1")
    reply = nodes.nodes["n0"].read_message()
    assert reply["body"] == {"type": "poll_ok", "in_reply_to": msg_id, "msgs": {mine: [[0, "a"]], theirs: [[0, "b"]]}}

    msg_id = nodes.send("n0", {"type": "commit_offsets", "offsets": {mine: 1, theirs: 1}})
    assert nodes.relay("n0")["body"]["offsets"] == {theirs: 1}
    nodes.relay("n1")
    assert nodes.nodes["n0"].read_message()["body"] == {"type": "commit_offsets_ok", "in_reply_to": msg_id}

    msg_id = nodes.send("n0", {"type": "list_committed_offsets", "keys": [mine, theirs, "never-sent"]})
    assert set(nodes.relay("n0")["body"]["keys"]) <= {theirs, "never-sent"}
    nodes.relay("n1")
    assert nodes.nodes["n0"].read_message()["body"] == {
        "type": "list_committed_offsets_ok", "in_reply_to": msg_id, "offsets": {mine: 1, theirs: 1}}
    # Each committed offset is kept by its key's owner alone.
    assert nodes.ask("n1", {"type": "list_committed_offsets", "keys": [theirs]})["body"]["offsets"] == {theirs: 1}


def test_an_unanswered_write_gets_an_indefinite_error_and_an_unanswered_read_a_definite_one(cluster):
    nodes = cluster("--forward-timeout", "0.3")
    mine, theirs = key_owned_by("n0"), key_owned_by("n1")
    expected = [
        ({"type": "send", "key": theirs, "msg": 1}, 13),
        ({"type": "commit_offsets", "offsets": {theirs: 1}}, 13),
        ({"type": "commit_offsets", "offsets": {mine: 1, theirs: 1}}, 13),  # applied by n0 only
        ({"type": "poll", "offsets": {theirs: 0}}, 11),
        ({"type": "poll", "offsets": {mine: 0, theirs: 0}}, 11),
        ({"type": "list_committed_offsets", "keys": [mine, theirs]}, 11),
    ]
    lost = []
    for body, code in expected:
        msg_id = nodes.send("n0", body)
        lost.append(nodes.nodes["n0"].read_message())  # sent to n1, and never carried there
        assert lost[-1]["dest"] == "n1"
        reply = nodes.nodes["n0"].read_message(timeout=5)
        assert reply["dest"] == "c1" and reply["body"]["in_reply_to"] == msg_id
        assert reply["body"]["type"] == "error" and reply["body"]["code"] == code, (body, reply)
        assert "n1" in reply["body"]["text"]
        assert ("applied by" in reply["body"]["text"]) == (body.get("offsets", {}).get(mine) == 1), reply
        assert "applied by n1" not in reply["body"]["text"]
    # The split commit was applied by the owner that answered.
    assert nodes.ask("n0", {"type": "list_committed_offsets", "keys": [mine]})["body"]["offsets"] == {mine: 1}
    # Replies that come after their deadline answer nothing: n0 writes nothing more.
    for message in lost:
        nodes.nodes["n1"].write(msgspec.json.encode(message) + b"\n")
        nodes.relay("n1")
    assert nodes.nodes["n0"].no_message_within(0.5)
    assert nodes.nodes["n0"].alive()


@pytest.mark.parametrize("body", [
    {"type": "send_ok", "in_reply_to": "seven", "offset": 1},
    {"type": "send_ok", "in_reply_to": 987654321, "offset": 1},
    {"type": "poll_ok", "in_reply_to": 1, "msgs": {"1": "not a list"}},
    {"type": "error", "in_reply_to": 1},
])
def test_a_malformed_or_unexpected_reply_from_another_node_is_never_answered(cluster, body):
    nodes = cluster()
    nodes.nodes["n0"].write(msgspec.json.encode({"src": "n1", "dest": "n0", "body": body}) + b"\n")
    assert nodes.nodes["n0"].no_message_within(0.5), "nodes must not trade errors about replies"
    key = key_owned_by("n0")
    assert nodes.ask("n0", {"type": "send", "key": key, "msg": 1})["body"]["type"] == "send_ok"


@pytest.mark.parametrize("wrong", [
    {"type": "commit_offsets_ok"},
    {"type": "poll_ok", "msgs": {}},
    {"type": "list_committed_offsets_ok", "offsets": {}},
])
def test_a_reply_of_the_wrong_type_fails_the_part_as_unknown(cluster, wrong):
    nodes = cluster()
    msg_id = nodes.send("n0", {"type": "send", "key": key_owned_by("n1"), "msg": 1})
    forwarded = nodes.nodes["n0"].read_message()
    body = {**wrong, "in_reply_to": forwarded["body"]["msg_id"]}
    nodes.nodes["n0"].write(msgspec.json.encode({"src": "n1", "dest": "n0", "body": body}) + b"\n")
    reply = nodes.nodes["n0"].read_message()
    assert reply["body"]["in_reply_to"] == msg_id and reply["body"]["code"] == 13
    assert f"answered a send with a {wrong['type']}" in reply["body"]["text"]
    assert nodes.ask("n0", {"type": "send", "key": key_owned_by("n0"), "msg": 2})["body"]["type"] == "send_ok"


def test_a_node_stopping_with_parts_in_flight_answers_their_clients_first(cluster):
    nodes = cluster()
    asked = [nodes.send("n0", {"type": "send", "key": key_owned_by("n1"), "msg": 1}),
             nodes.send("n0", {"type": "poll", "offsets": {key_owned_by("n1"): 0}}, src="c2")]
    forwarded: list[str] = []
    while len(forwarded) < len(asked):  # read together, they go in one bundle
        sent = nodes.nodes["n0"].read_message()
        members = sent["body"]["msgs"] if sent["body"]["type"] == "bundle" else [sent["body"]]
        forwarded += [sent["dest"]] * len(members)
    assert forwarded == ["n1", "n1"]
    assert nodes.nodes["n0"].close_stdin_and_wait() == 0
    replies = {m["body"]["in_reply_to"]: m["body"] for m in (nodes.nodes["n0"].read_message() for _ in asked)}
    assert replies[asked[0]]["code"] == 13 and replies[asked[1]]["code"] == 11
    assert all("the node stopped first" in body["text"] for body in replies.values())


def test_a_node_stopping_with_half_of_a_split_write_applied_says_its_outcome_is_unknown(cluster):
    """The part applied here waits for its durable COMMIT; the other part is abandoned at end
    of input: the client still hears 13, naming the node that applied its part."""
    nodes = cluster()
    here, there = key_owned_by("n0"), key_owned_by("n1")
    asked = nodes.send("n0", {"type": "commit_offsets", "offsets": {here: 0, there: 0}})
    assert nodes.nodes["n0"].read_message()["dest"] == "n1"
    assert nodes.nodes["n0"].close_stdin_and_wait() == 0
    reply = nodes.nodes["n0"].read_message()["body"]
    assert (reply["in_reply_to"], reply["code"]) == (asked, 13)
    assert "applied by n0 only" in reply["text"] and "the node stopped first" in reply["text"]


def test_the_file_is_named_at_init_and_a_restart_continues_it(tmp_path):
    template = str(tmp_path / "{node_id}.db")
    node = NodeChild(["--db", template], tmp_path / "first.stderr")
    try:
        assert node.no_message_within(0.3) and not list(tmp_path.glob("*.db")), "opened at init, not before"
        node.send_message({"type": "init", "msg_id": 1, "node_id": "n1", "node_ids": ["n1"]})
        assert node.read_message()["body"]["type"] == "init_ok"
        assert [p.name for p in tmp_path.glob("*.db")] == ["n1.db"]
        node.send_message({"type": "send", "msg_id": 2, "key": "k", "msg": 1})
        assert node.read_message()["body"]["offset"] == 0
    finally:
        node.kill()
        node.cleanup()
    again = NodeChild([], tmp_path / "second.stderr", env={**os.environ, "KAFKA_NODE_DB": template})
    try:
        again.send_message({"type": "init", "msg_id": 1, "node_id": "n1", "node_ids": ["n1"]})
        assert again.read_message()["body"]["type"] == "init_ok"
        again.send_message({"type": "send", "msg_id": 2, "key": "k", "msg": 2})
        assert again.read_message()["body"]["offset"] == 1, "the same log as before the SIGKILL"
    finally:
        again.cleanup()


@pytest.mark.parametrize("node_id", ["../escape", "a/b", ".."])
def test_a_node_id_that_cannot_name_a_file_is_refused_at_init(tmp_path, node_id):
    node = NodeChild(["--db", str(tmp_path / "{node_id}.db")], tmp_path / "node.stderr")
    try:
        node.send_message({"type": "init", "msg_id": 1, "node_id": node_id, "node_ids": [node_id]})
        reply = node.read_message()
        assert reply["body"]["type"] == "error" and reply["body"]["code"] == 13
        assert node.proc.wait(10) == 2
        assert not list(tmp_path.rglob("*.db"))
    finally:
        node.cleanup()


# --- whole runs of the workload on several of our nodes ----------------------------------------

def run_workload(tmp_path: Path, *flags: str) -> tuple[subprocess.CompletedProcess, dict[str, Any]]:
    done = subprocess.run(
        [installed_script("maelstrom-kafka-test"), *flags, "--bin", installed_script("maelstrom-kafka"),
         "--", "--db", str(tmp_path / "{node_id}.db")],
        cwd=tmp_path, capture_output=True, text=True, timeout=150,
    )
    results = json.loads((tmp_path / "store" / "latest" / "results.json").read_text())
    return done, results


def test_two_of_our_nodes_pass_the_workload_sharing_the_keys(tmp_path):
    done, results = run_workload(tmp_path, "--node-count", "2", "--time-limit", "5", "--rate", "300",
                                 "--recovery-time", "0.5", "--seed", "7")
    assert_correct_node_verdict(results, status=done.returncode, stdout=done.stdout)
    servers = results["net"]["servers"]
    assert servers["msg-count"] > 0, "keys owned by the other node are forwarded to it"
    assert {p.name for p in tmp_path.glob("*.db")} == {"n0.db", "n1.db"}
    assert stored_messages(tmp_path / "n0.db") and stored_messages(tmp_path / "n1.db")


def test_three_of_our_nodes_pass_the_workload_while_each_is_killed_and_restarted(tmp_path):
    done, results = run_workload(tmp_path, "--node-count", "3", "--time-limit", "6", "--rate", "300",
                                 "--recovery-time", "1", "--restart-every", "1", "--seed", "8")
    assert_correct_node_verdict(results, status=done.returncode, stdout=done.stdout)
    assert len(results["run"]["restarts"]) >= 3, results["run"]["restarts"]
    assert {p.name for p in tmp_path.glob("*.db")} == {"n0.db", "n1.db", "n2.db"}


def refuse(nodes: Cluster, forwarded: dict[str, Any], code: int, text: str) -> None:
    """Answer a forwarded part, as its owner would, with an error."""
    body = {"type": "error", "in_reply_to": forwarded["body"]["msg_id"], "code": code, "text": text}
    nodes.nodes[forwarded["src"]].write(msgspec.json.encode({"src": forwarded["dest"], "dest": forwarded["src"],
                                                             "body": body}) + b"\n")


@pytest.mark.parametrize(("code", "expected", "definite"), [
    (11, 11, True), (10, 10, True), (14, 14, True), (13, 13, False), (0, 13, False), (1000, 13, False),
])
def test_an_owners_refusal_passes_on_only_when_definite(cluster, code, expected, definite):
    nodes = cluster()
    msg_id = nodes.send("n0", {"type": "send", "key": key_owned_by("n1"), "msg": 1})
    refuse(nodes, nodes.nodes["n0"].read_message(), code, "the owner's reason")
    reply = nodes.nodes["n0"].read_message()["body"]
    assert reply["in_reply_to"] == msg_id and reply["code"] == expected
    if definite:
        assert reply["text"] == "the owner's reason"
    else:
        assert reply["text"].startswith("outcome unknown") and f"code {code}" in reply["text"]
    assert nodes.ask("n0", {"type": "send", "key": key_owned_by("n0"), "msg": 2})["body"]["type"] == "send_ok"


def test_a_split_write_refused_by_one_owner_only_may_have_been_applied(cluster):
    nodes = cluster()
    mine, theirs = key_owned_by("n0"), key_owned_by("n1")
    msg_id = nodes.send("n0", {"type": "commit_offsets", "offsets": {mine: 3, theirs: 3}})
    refuse(nodes, nodes.nodes["n0"].read_message(), 11, "busy")
    reply = nodes.nodes["n0"].read_message()["body"]
    assert reply["in_reply_to"] == msg_id and reply["code"] == 13
    assert reply["text"].startswith("outcome unknown: applied by n0 only")
    assert nodes.ask("n0", {"type": "list_committed_offsets", "keys": [mine]})["body"]["offsets"] == {mine: 3}


def test_a_split_write_refused_definitely_by_every_owner_says_each_reason(cluster):
    ids = ["n0", "n1", "n2"]
    nodes = cluster(node_ids=ids)
    first, second = key_owned_by("n1", ids), key_owned_by("n2", ids)
    msg_id = nodes.send("n0", {"type": "commit_offsets", "offsets": {first: 1, second: 1}})
    parts = {m["dest"]: m for m in (nodes.nodes["n0"].read_message(), nodes.nodes["n0"].read_message())}
    refuse(nodes, parts["n1"], 11, "first reason")
    refuse(nodes, parts["n2"], 11, "second reason")
    reply = nodes.nodes["n0"].read_message()["body"]
    assert reply["in_reply_to"] == msg_id and reply["code"] == 11
    assert "n1: first reason (code 11)" in reply["text"] and "n2: second reason (code 11)" in reply["text"]
