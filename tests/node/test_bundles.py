"""One message per other node per write: what a node has for another at one moment goes in one
bundle, and a bundle read is taken as if each of its members had come alone (a malformed member
alone refused, a bundle before init answered member by member). Real cores on real SQLite files,
real bytes between them, and the real outbox on a real pipe."""

from __future__ import annotations

import os
import zlib
from typing import Any

import msgspec
import pytest

from kafka_node import protocol
from kafka_node.node import Node, ReplicationSettings, Step
from kafka_node.outbox import Held, Outbox
from kafka_node.storage import Storage

from support.messages import message

IDS = ["n0", "n1"]


class Core:
    def __init__(self, tmp_path: Any, node_id: str) -> None:
        self.node_id = node_id
        self.storage = Storage.open(str(tmp_path / f"{node_id}.db"))
        self.node = Node(lambda _node_id: self.storage, replication=ReplicationSettings(factor=1))

    def lines(self, *lines: bytes) -> Step:
        return self.node.receive(list(lines), 0.0)

    def feed(self, *bodies: dict[str, Any]) -> Step:
        return self.lines(*(message(body, "c1", self.node_id) for body in bodies))

    def init(self) -> None:
        self.feed({"type": "init", "node_id": self.node_id, "node_ids": IDS, "msg_id": 1})


@pytest.fixture
def pair(tmp_path):
    cores = {node_id: Core(tmp_path, node_id) for node_id in IDS}
    for core in cores.values():
        core.init()
    yield cores
    for core in cores.values():
        core.storage.close()


def owned_by(node_id: str, skip: int = 0) -> str:
    keys = (str(i) for i in range(1000) if IDS[zlib.crc32(str(i).encode()) % len(IDS)] == node_id)
    return [next(keys) for _ in range(skip + 1)][-1]


def written_lines(messages: list[Any], peers: frozenset[str]) -> list[bytes]:
    return protocol.encode(messages, peers).splitlines()


def bodies(step: Step) -> list[dict[str, Any]]:
    return [msgspec.json.decode(msgspec.json.encode(held.reply.body)) for held in step.held]


def test_what_one_write_has_for_each_other_node_goes_in_one_bundle_in_order():
    replies = [protocol.Outgoing("n0", dest, protocol.SendOk(in_reply_to=i, offset=i))
               for i, dest in enumerate(["n1", "c1", "n2", "n1", "n1"])]
    lines = [msgspec.json.decode(line) for line in written_lines(replies, frozenset({"n1", "n2"}))]
    assert [(line["dest"], line["body"]["type"]) for line in lines] == [
        ("n1", "bundle"), ("c1", "send_ok"), ("n2", "send_ok")]  # a lone message stays as it is
    assert [member["in_reply_to"] for member in lines[0]["body"]["msgs"]] == [0, 3, 4]
    assert len(written_lines(replies, frozenset())) == 5, "without peers known, nothing is bundled"


def test_requests_sent_on_in_one_bundle_are_applied_and_answered_in_one_bundle(pair):
    there = [owned_by("n1", skip) for skip in range(2)]
    step = pair["n0"].feed(*({"type": "send", "key": key, "msg": i, "msg_id": 2 + i} for i, key in enumerate(there)))
    (line,) = written_lines(step.forwarded, pair["n0"].node.peers)
    owner_step = pair["n1"].lines(line)
    pair["n1"].storage.sync()
    (back,) = written_lines([held.reply for held in owner_step.held], pair["n1"].node.peers)
    assert msgspec.json.decode(back)["body"]["type"] == "bundle"
    assert [(body["in_reply_to"], body["offset"]) for body in bodies(pair["n0"].lines(back))] == [(2, 0), (3, 0)]


def test_a_malformed_member_is_refused_alone_and_the_others_are_taken(pair):
    there = owned_by("n1")
    bundle = message({"type": "bundle", "msgs": [
        {"type": "send", "key": there, "msg": "kept", "msg_id": 5},
        {"type": "send", "key": 7, "msg": "key not a string", "msg_id": 6},
        {"type": "bundle", "msgs": []},  # a bundle in a bundle is not unpacked: never answered
    ]}, "n0", "n1")
    step = pair["n1"].lines(bundle)
    assert [(body["in_reply_to"], body["type"]) for body in bodies(step)] == [(5, "send_ok"), (6, "error")]
    assert bodies(step)[1]["code"] == 12 and [held.reply.dest for held in step.held] == ["n0", "n0"]


def test_a_bundle_before_init_has_its_requests_answered_at_once(tmp_path):
    core = Core(tmp_path, "n1")
    try:
        bundle = message({"type": "bundle", "msgs": [
            {"type": "send", "key": "a", "msg": 1, "msg_id": 5},
            {"type": "replicate", "part": 0, "epoch": 1, "covers": 1, "prev": [0, 0]},
        ]}, "n0", "n1")
        (body,) = bodies(core.lines(bundle))
        assert (body["in_reply_to"], body["code"]) == (5, 11), "the replica's message is ignored, the request refused"
    finally:
        core.storage.close()


def test_a_malformed_bundle_is_never_answered(pair):
    for broken in ({"type": "bundle", "msgs": 3}, {"type": "bundle"}):
        assert pair["n1"].lines(message(broken, "n0", "n1")).held == []


def test_the_outbox_writes_what_waits_for_nothing_and_what_is_ready_in_one_bundle_per_node():
    read_end, write_end = os.pipe()
    try:
        outbox = Outbox(write_end, wake=lambda: None)
        outbox.peers = frozenset({"n1"})
        forwarded = protocol.Forwarded("n0", "n1", protocol.Send(key="k", msg=msgspec.Raw(b"1"), msg_id=9))
        reply = protocol.Outgoing("n0", "n1", protocol.SendOk(in_reply_to=4, offset=0))
        outbox.hold([Held(reply, 0)], send=[forwarded])
        (line,) = os.read(read_end, 1 << 16).splitlines()
        assert [member["type"] for member in msgspec.json.decode(line)["body"]["msgs"]] == ["send", "send_ok"]
    finally:
        os.close(read_end)
        os.close(write_end)
