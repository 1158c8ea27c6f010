"""The node's core driven directly, in this process, as the serve loop drives it: lines and the
time in, replies with the commit each waits for and the messages to other nodes out, on a real
SQLite file opened by the test. No pipe, no thread of the test's own, no clock: deadlines are
passed in, so that a part's timeout is tested without waiting for it."""

from __future__ import annotations

import ast
import zlib
from pathlib import Path
from typing import Any

import apsw
import msgspec
import pytest

from kafka_node import protocol
from kafka_node.node import Node, ReplicationSettings, Step
from kafka_node.rpcs import RPCS, PollLimits
from kafka_node.storage import Durability, LogFile, Storage

from support.messages import message
from support.scripts import PROJECT_ROOT


class Core:
    """One node's core on its own file, as `maelstrom-kafka` runs it, fed whole batches."""

    def __init__(self, tmp_path: Path, node_id: str = "n0", durability: Durability = Durability.FULL,
                 **settings: Any) -> None:
        self.node_id = node_id
        self.storage = Storage.open(str(tmp_path / f"{node_id}.db"), durability)
        self.node = Node(lambda _node_id: self.storage, **settings)
        self.now = 0.0

    def feed(self, *bodies: dict[str, Any], src: str = "c1") -> Step:
        return self.node.receive([message(body, src, self.node_id) for body in bodies], self.now)

    def lines(self, *lines: bytes) -> Step:
        return self.node.receive(list(lines), self.now)

    def close(self) -> None:
        self.storage.close()


@pytest.fixture
def core(tmp_path):
    started = Core(tmp_path)
    started.feed({"type": "init", "node_id": "n0", "node_ids": ["n0"], "msg_id": 1})
    yield started
    started.close()


def decoded(body: protocol.Reply) -> dict[str, Any]:
    """A reply body as its JSON reads (a poll's messages, kept as JSON text, decoded too)."""
    return msgspec.json.decode(msgspec.json.encode(body))


def bodies(step: Step) -> list[dict[str, Any]]:
    return [decoded(held.reply.body) for held in step.held]


# --- the four RPCs -------------------------------------------------------------------------

def test_an_acknowledgement_waits_for_its_commit_and_a_read_for_nothing_durable(core):
    step = core.feed({"type": "send", "key": "a", "msg": 1, "msg_id": 2},
                     {"type": "send", "key": "a", "msg": {"x": [2]}, "msg_id": 3},
                     {"type": "commit_offsets", "offsets": {"a": 0}, "msg_id": 4})
    commit = core.storage.log.commits
    assert [(held.commit, decoded(held.reply.body)["type"]) for held in step.held] == [
        (commit, "send_ok"), (commit, "send_ok"), (commit, "commit_offsets_ok")]
    assert [held.reply.body.offset for held in step.held[:2]] == [0, 1]
    assert core.storage.has_unsynced_commits and core.storage.durable < commit

    # before the sync, a poll reads below what the unsynced commit wrote, waiting for nothing;
    # a listing of the offset that commit moved waits for it
    step = core.feed({"type": "poll", "offsets": {"a": 0}, "msg_id": 5},
                     {"type": "list_committed_offsets", "keys": ["a"], "msg_id": 6})
    assert [held.commit for held in step.held] == [0, commit]
    assert decoded(step.held[0].reply.body)["msgs"] == {}

    core.storage.sync()
    assert not core.storage.has_unsynced_commits, "a batch that wrote nothing is given no sync"
    step = core.feed({"type": "poll", "offsets": {"a": 0}, "msg_id": 7},
                     {"type": "list_committed_offsets", "keys": ["a", "b"], "msg_id": 8})
    assert [held.commit for held in step.held] == [0, 0]
    assert decoded(step.held[0].reply.body) == {"type": "poll_ok", "in_reply_to": 7, "msgs": {"a": [[0, 1], [1, {"x": [2]}]]}}
    assert decoded(step.held[1].reply.body) == {"type": "list_committed_offsets_ok", "in_reply_to": 8, "offsets": {"a": 0}}
    assert {(held.reply.src, held.reply.dest) for held in step.held} == {("n0", "c1")}


def test_a_poll_in_the_same_batch_as_its_sends_sees_them_and_waits_for_their_commit(core):
    step = core.feed({"type": "send", "key": "k", "msg": 10, "msg_id": 2},
                     {"type": "poll", "offsets": {"k": 0}, "msg_id": 3})
    assert step.held[1].commit == step.held[0].commit > 0
    assert decoded(step.held[1].reply.body)["msgs"] == {"k": [[0, 10]]}


def test_reads_and_writes_of_one_batch_are_answered_in_order_in_one_transaction(core):
    core.feed({"type": "commit_offsets", "offsets": {"b": 3}, "msg_id": 2})
    core.storage.sync()
    before = core.storage.log.commits
    step = core.feed({"type": "list_committed_offsets", "keys": ["b"], "msg_id": 3},
                     {"type": "send", "key": "a", "msg": 1, "msg_id": 4},
                     {"type": "send", "key": "a", "msg": 2, "msg_id": 5},
                     {"type": "commit_offsets", "offsets": {"a": 1}, "msg_id": 6},
                     {"type": "list_committed_offsets", "keys": ["a"], "msg_id": 7})
    assert [(body["in_reply_to"], body["type"]) for body in bodies(step)] == [
        (3, "list_committed_offsets_ok"), (4, "send_ok"), (5, "send_ok"), (6, "commit_offsets_ok"),
        (7, "list_committed_offsets_ok")]
    assert core.storage.log.commits == before + 1, "one COMMIT for the batch"
    # a listing of an offset this transaction committed sees it, and waits for this commit
    assert (bodies(step)[4]["offsets"], step.held[4].commit) == ({"a": 1}, before + 1)
    assert step.held[0].commit == 0, "a listing of an offset committed durably earlier waits for nothing"


def test_a_poll_in_a_writing_batch_still_reads_below_what_an_earlier_commit_not_yet_durable_sent(core):
    core.feed({"type": "send", "key": "early", "msg": 1, "msg_id": 2})  # committed, not yet synced
    step = core.feed({"type": "send", "key": "other", "msg": 2, "msg_id": 3},
                     {"type": "poll", "offsets": {"early": 0}, "msg_id": 4})
    assert (decoded(step.held[1].reply.body)["msgs"], step.held[1].commit) == ({}, 0)


def test_a_poll_is_bounded_per_key_by_the_poll_limits(tmp_path):
    core = Core(tmp_path, poll_limits=PollLimits(per_key=2))
    try:
        core.feed({"type": "init", "node_id": "n0", "node_ids": ["n0"], "msg_id": 1})
        core.feed(*({"type": "send", "key": "k", "msg": i, "msg_id": 10 + i} for i in range(5)))
        core.storage.sync()
        (held,) = core.feed({"type": "poll", "offsets": {"k": 1}, "msg_id": 2}).held
        assert decoded(held.reply.body)["msgs"] == {"k": [[1, 1], [2, 2]]}
    finally:
        core.close()


def test_max_batch_splits_a_batch_into_transactions(tmp_path):
    core = Core(tmp_path, max_batch=2)
    try:
        core.feed({"type": "init", "node_id": "n0", "node_ids": ["n0"], "msg_id": 1})
        before = core.storage.log.commits
        step = core.feed(*({"type": "send", "key": "k", "msg": i, "msg_id": 10 + i} for i in range(5)))
        assert [held.commit - before for held in step.held] == [1, 1, 2, 2, 3]
    finally:
        core.close()


# --- errors --------------------------------------------------------------------------------

def test_before_init_every_request_is_refused_definitely_and_nothing_is_stored(tmp_path):
    core = Core(tmp_path)
    try:
        step = core.feed({"type": "send", "key": "a", "msg": 1, "msg_id": 1})
        assert bodies(step) == [{"type": "error", "in_reply_to": 1, "code": 11,
                                 "text": "node not initialised yet: send init first"}]
        assert step.opened is None
        step = core.feed({"type": "init", "node_id": "n0", "node_ids": ["n0"], "msg_id": 2},
                         {"type": "send", "key": "a", "msg": 1, "msg_id": 3})
        assert step.opened is core.storage, "the batch whose init opened the log says so, for its syncs to be heard"
        assert [body["type"] for body in bodies(step)] == ["init_ok", "send_ok"]
        assert bodies(step)[1]["offset"] == 0
        assert core.feed({"type": "send", "key": "a", "msg": 2, "msg_id": 4}).opened is None, "only that batch says so"
    finally:
        core.close()


def test_an_init_whose_log_is_not_ours_is_refused_indefinitely_and_the_node_stops(tmp_path):
    foreign = apsw.Connection(str(tmp_path / "n0.db"))
    foreign.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY)")
    foreign.close()
    log_file = LogFile(str(tmp_path / "{node_id}.db"))
    node = Node(log_file.open)
    step = node.receive([message({"type": "init", "node_id": "n0", "node_ids": ["n0"], "msg_id": 1})], 0.0)
    (body,) = bodies(step)
    assert (body["code"], body["text"].startswith("refusing to start:")) == (13, True)
    assert node.stopping and node.refused and step.opened is None


@pytest.mark.parametrize("node_id", ["", ".", "..", "a/b", "a\0b"])
def test_an_init_whose_node_id_cannot_name_its_file_is_refused_and_nothing_is_created(tmp_path, node_id):
    node = Node(LogFile(str(tmp_path / "{node_id}.db")).open)
    step = node.receive([message({"type": "init", "node_id": node_id, "node_ids": [node_id], "msg_id": 1})], 0.0)
    (body,) = bodies(step)
    assert (body["code"], "cannot be part of a file name" in body["text"]) == (13, True)
    assert node.stopping and list(tmp_path.iterdir()) == []


def test_an_init_opens_the_file_its_node_id_names(tmp_path):
    log_file = LogFile(str(tmp_path / "{node_id}.db"))
    try:
        step = Node(log_file.open).receive([message({"type": "init", "node_id": "n7", "node_ids": ["n7"], "msg_id": 1})], 0.0)
        assert bodies(step) == [{"type": "init_ok", "in_reply_to": 1}]
        assert step.opened is log_file.storage and (tmp_path / "n7.db").exists()
    finally:
        log_file.close()


@pytest.mark.parametrize(("line", "code"), [
    (message({"type": "gossip", "msg_id": 5}), 10),
    (message({"type": "send", "key": 7, "msg": 1, "msg_id": 5}), 12),
    (message({"type": "poll", "offsets": {"a": -1}, "msg_id": 5}), 12),
    (b'{"src": "c1", "dest": "n0", "body": {"type": "send", "key": "a", "msg": "\xff", "msg_id": 5}}', 12),
])
def test_a_bad_request_gets_its_code_and_the_rest_of_the_batch_is_served(core, line, code):
    step = core.lines(line, message({"type": "send", "key": "a", "msg": 1, "msg_id": 6}))
    assert [(body["type"], body.get("code"), body["in_reply_to"]) for body in bodies(step)] == [
        ("error", code, 5), ("send_ok", None, 6)]


def test_a_refusal_names_the_wrong_field_in_our_words(core):
    (held,) = core.feed({"type": "send", "key": 7, "msg": 1, "msg_id": 5}).held
    assert "`$.body.key`" in held.reply.body.text


def test_a_reply_shaped_line_sent_to_a_single_node_is_an_unsupported_type(core):
    (held,) = core.feed({"type": "send_ok", "offset": 1, "in_reply_to": 3, "msg_id": 5}).held
    assert (held.reply.body.code, held.reply.body.in_reply_to) == (10, 5)


def test_a_line_that_names_nobody_is_skipped_without_a_reply(core):
    assert core.lines(b"not json", b"   ").held == []


def test_writes_meeting_a_lock_held_elsewhere_are_refused_definitely_and_reads_are_served(core, tmp_path):
    holder = apsw.Connection(str(tmp_path / "n0.db"))
    holder.execute("BEGIN IMMEDIATE")
    core.storage.conn.set_busy_timeout(50)
    try:
        step = core.feed({"type": "send", "key": "a", "msg": 1, "msg_id": 2},
                         {"type": "list_committed_offsets", "keys": ["a"], "msg_id": 3})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    send, listing = bodies(step)
    assert (send["code"], send["text"].startswith("storage error, nothing applied: the log is locked")) == (11, True)
    assert listing == {"type": "list_committed_offsets_ok", "in_reply_to": 3, "offsets": {}}
    assert core.feed({"type": "send", "key": "a", "msg": 2, "msg_id": 4}).held[0].reply.body.offset == 0


# --- several nodes: routing and deadlines ----------------------------------------------------

IDS = ["n0", "n1"]


def key_owned_by(node_id: str) -> str:
    return next(str(i) for i in range(1000) if IDS[zlib.crc32(str(i).encode()) % len(IDS)] == node_id)


@pytest.fixture
def pair(tmp_path):
    cores = {node_id: Core(tmp_path, node_id, replication=ReplicationSettings(factor=1)) for node_id in IDS}
    for node_id, core in cores.items():
        core.feed({"type": "init", "node_id": node_id, "node_ids": IDS, "msg_id": 1})
    yield cores
    for core in cores.values():
        core.close()


def relay(step: Step, cores: dict[str, Core]) -> list[Step]:
    """Carry every message a step sends on to the node it is addressed to; their steps."""
    return [cores[sent.dest].lines(protocol.encode([sent]).rstrip(b"\n")) for sent in step.forwarded]


def test_a_send_for_a_key_owned_elsewhere_is_applied_by_its_owner_and_answered_by_the_node_asked(pair):
    there = key_owned_by("n1")
    step = pair["n0"].feed({"type": "send", "key": there, "msg": 7, "msg_id": 2})
    assert step.held == [] and [(m.src, m.dest, decoded(m.body)["type"]) for m in step.forwarded] == [("n0", "n1", "send")]
    (owner_step,) = relay(step, pair)
    assert owner_step.held[0].commit > 0, "the owner's reply waits for its own durable COMMIT"
    back = pair["n0"].lines(protocol.encode([owner_step.held[0].reply]).rstrip(b"\n"))
    assert bodies(back) == [{"type": "send_ok", "in_reply_to": 2, "offset": 0}]
    assert back.held[0].reply.dest == "c1"


def test_every_part_of_a_batch_owned_elsewhere_is_sent_on_and_answered(pair):
    there = key_owned_by("n1")
    step = pair["n0"].feed({"type": "send", "key": there, "msg": 1, "msg_id": 2},
                           {"type": "commit_offsets", "offsets": {there: 0}, "msg_id": 3},
                           {"type": "send", "key": there, "msg": 2, "msg_id": 4})
    assert [decoded(sent.body)["type"] for sent in step.forwarded] == ["send", "commit_offsets", "send"]
    (owner_step,) = [pair["n1"].lines(*(protocol.encode([sent]).rstrip(b"\n") for sent in step.forwarded))]
    back = pair["n0"].lines(*(protocol.encode([held.reply]).rstrip(b"\n") for held in owner_step.held))
    assert [(body["in_reply_to"], body["type"]) for body in bodies(back)] == [
        (2, "send_ok"), (3, "commit_offsets_ok"), (4, "send_ok")]
    assert [body.get("offset") for body in bodies(back)] == [0, None, 1]


def test_a_poll_across_owners_joins_every_owners_messages(pair):
    here, there = key_owned_by("n0"), key_owned_by("n1")
    for node_id, key in (("n0", here), ("n1", there)):
        pair[node_id].feed({"type": "send", "key": key, "msg": node_id, "msg_id": 2})
        pair[node_id].storage.sync()
    step = pair["n0"].feed({"type": "poll", "offsets": {here: 0, there: 0}, "msg_id": 3})
    assert step.held == [], "the part applied here waits for the other part"
    (owner_step,) = relay(step, pair)
    back = pair["n0"].lines(protocol.encode([owner_step.held[0].reply]).rstrip(b"\n"))
    assert decoded(back.held[0].reply.body)["msgs"] == {here: [[0, "n0"]], there: [[0, "n1"]]}


def test_a_listing_across_owners_joins_every_owners_committed_offsets(pair):
    here, there = key_owned_by("n0"), key_owned_by("n1")
    pair["n0"].feed({"type": "commit_offsets", "offsets": {here: 3}, "msg_id": 2})
    pair["n1"].feed({"type": "commit_offsets", "offsets": {there: 5}, "msg_id": 2})
    for core in pair.values():
        core.storage.sync()
    step = pair["n0"].feed({"type": "list_committed_offsets", "keys": [here, there, "never"], "msg_id": 3})
    (owner_step,) = relay(step, pair)
    back = pair["n0"].lines(protocol.encode([owner_step.held[0].reply]).rstrip(b"\n"))
    assert bodies(back) == [{"type": "list_committed_offsets_ok", "in_reply_to": 3, "offsets": {here: 3, there: 5}}]


def test_a_poll_across_owners_where_one_owner_has_nothing_is_one_valid_object(pair):
    here, there = key_owned_by("n0"), key_owned_by("n1")
    pair["n0"].feed({"type": "send", "key": here, "msg": 1, "msg_id": 2})
    pair["n0"].storage.sync()
    for first, second in (({here: 0}, {there: 0}), ({there: 0}, {here: 0})):
        step = pair["n0"].feed({"type": "poll", "offsets": {**first, **second}, "msg_id": 3})
        (owner_step,) = relay(step, pair)
        back = pair["n0"].lines(protocol.encode([owner_step.held[0].reply]).rstrip(b"\n"))
        assert decoded(back.held[0].reply.body)["msgs"] == {here: [[0, 1]]}


@pytest.mark.parametrize(("body", "code", "words"), [
    ({"type": "send", "msg": 1}, 13, "outcome unknown"),
    ({"type": "commit_offsets", "offsets": {}}, 13, "outcome unknown"),
    ({"type": "poll", "offsets": {}}, 11, "nothing read"),
    ({"type": "list_committed_offsets", "keys": []}, 11, "nothing read"),
])
def test_a_part_unanswered_by_its_deadline_fails_a_write_indefinitely_and_a_read_definitely(pair, body, code, words):
    there = key_owned_by("n1")
    body = {**body, "msg_id": 9}
    if "msg" in body:
        body["key"] = there
    elif "offsets" in body:
        body["offsets"] = {there: 0}
    else:
        body["keys"] = [there]
    core = pair["n0"]
    core.now = 100.0
    assert core.feed(body).held == []
    assert core.node.next_deadline() == 100.0 + core.node.forward_timeout
    assert core.node.expire(100.0 + core.node.forward_timeout - 0.001) == []
    (held,) = core.node.expire(100.0 + core.node.forward_timeout)
    assert (held.reply.body.code, words in held.reply.body.text) == (code, True)
    assert core.node.next_deadline() is None


def test_in_a_cluster_a_malformed_reply_is_never_answered_and_a_malformed_request_is(pair):
    malformed_reply = message({"type": "send_ok", "in_reply_to": "x", "offset": 0}, "n1", "n0")
    malformed_request = message({"type": "send", "key": 7, "msg": 1, "msg_id": 5}, "c1", "n0")
    step = pair["n0"].lines(malformed_reply, malformed_request)
    assert [(held.reply.dest, held.reply.body.code) for held in step.held] == [("c1", 12)]


def test_a_write_its_owner_refused_definitely_is_refused_definitely_with_the_owners_words(pair, tmp_path):
    holder = apsw.Connection(str(tmp_path / "n1.db"))
    holder.execute("BEGIN IMMEDIATE")
    pair["n1"].storage.conn.set_busy_timeout(50)
    try:
        step = pair["n0"].feed({"type": "send", "key": key_owned_by("n1"), "msg": 1, "msg_id": 2})
        (owner_step,) = relay(step, pair)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    back = pair["n0"].lines(protocol.encode([owner_step.held[0].reply]).rstrip(b"\n"))
    (body,) = bodies(back)
    assert (body["code"], body["text"].startswith("storage error, nothing applied")) == (11, True)


def test_a_message_is_stored_and_sent_on_without_its_carriage_returns(pair):
    here, there = key_owned_by("n0"), key_owned_by("n1")
    raw_cr = '{"src":"c1","dest":"n0","body":{"type":"send","key":"%s","msg":[1,\r2],"msg_id":%d}}'
    step = pair["n0"].lines(*((raw_cr % (key, i)).encode() for i, key in enumerate((here, there))))
    assert b"\r" not in protocol.encode(step.forwarded)
    relay(step, pair)
    for core, key in ((pair["n0"], here), (pair["n1"], there)):
        core.storage.sync()
        (held,) = core.feed({"type": "poll", "offsets": {key: 0}, "msg_id": 9}).held
        assert b"\r" not in bytes(held.reply.body.msgs) and decoded(held.reply.body)["msgs"] == {key: [[0, [1, 2]]]}


def test_an_init_again_keeps_the_node_in_its_cluster(pair):
    pair["n0"].feed({"type": "init", "node_id": "n0", "node_ids": IDS, "msg_id": 5})
    step = pair["n0"].feed({"type": "send", "key": key_owned_by("n1"), "msg": 1, "msg_id": 6})
    assert [sent.dest for sent in step.forwarded] == ["n1"]


def test_a_late_reply_from_the_owner_is_ignored_once_its_part_has_expired(pair):
    there = key_owned_by("n1")
    step = pair["n0"].feed({"type": "send", "key": there, "msg": 1, "msg_id": 2})
    (owner_step,) = relay(step, pair)
    assert len(pair["n0"].node.expire(1e9)) == 1
    assert pair["n0"].lines(protocol.encode([owner_step.held[0].reply]).rstrip(b"\n")).held == []


# --- the table is the one place that knows each request type ---------------------------------

def places_naming(names: set[str], allowed: set[str]) -> list[str]:
    """Where the node's own modules (not the runner's, the benchmark's or the client toolkit's)
    other than `allowed` use any of `names` as a name or an attribute."""
    places = []
    for path in sorted((PROJECT_ROOT / "kafka_node").glob("**/*.py")):
        if path.name in allowed or path.relative_to(PROJECT_ROOT / "kafka_node").parts[0] in ("maelstrom", "bench", "clientkit"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
            if name in names:
                places.append(f"{path.name}:{node.lineno} {name}")
    return places


def test_every_request_type_has_one_record_and_only_the_table_and_the_protocol_name_them():
    assert set(RPCS) == set(protocol.REQUEST_TYPES.values())
    assert places_naming({cls.__name__ for cls in protocol.REQUEST_TYPES.values()}, {"protocol.py", "rpcs.py"}) == []


def test_errors_11_and_13_are_made_in_one_module():
    assert places_naming({"TEMPORARILY_UNAVAILABLE", "CRASH"}, {"protocol.py", "errors.py"}) == []
