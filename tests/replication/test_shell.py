"""Replication, the shell round the partition machines, on a real SQLite file and Maelstrom's lin-kv model: what it
takes out of a node's input, routing, a follower's one transaction and its answers, and what client replies wait for."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from kafka_node import decoding, errors, protocol
from kafka_node.maelstrom.services import LinKV
from kafka_node.outbox import Held
from kafka_node.replication.events import Entry
from kafka_node.replication.placement import Placement, kv_key
from kafka_node.replication.shell import Replication, _cumulative
from kafka_node.replication.sqlite_store import SqliteStore
from kafka_node.replication.timing import Timing
from kafka_node.storage import Storage
from kafka_node.wire import Sent
from kafka_node.wire.kv import KEY_DOES_NOT_EXIST, LIN_KV, KvCas, KvRead
from kafka_node.wire.replica import Leadership, PartitionState, Replicate, ReplicateOk, ReplicateRefused

from support.messages import message

#: n0 is the first replica of partition 0 (with n1) and the second of partition 2 (after n2); partition 1 (n1
#: and n2) is held elsewhere.
PLACEMENT = Placement(["n0", "n1", "n2"], 2, 2)
FIRST, ELSEWHERE, SECOND = 0, 1, 2
TIMING = Timing()
N1_FILE = "file-n1"


def key_of(pid: int) -> str:
    return next(key for key in (f"k{i}" for i in itertools.count()) if PLACEMENT.partition(key) == pid)


K0, K1, K2 = key_of(0), key_of(1), key_of(2)


@dataclass
class Node:
    """n0's replication on its own file, with lin-kv answering what n0 asks it."""

    storage: Storage
    store: SqliteStore
    shell: Replication
    kv: LinKV = field(default_factory=LinKV)
    sent: list[Sent] = field(default_factory=list)  # what n0 sent other nodes
    held: list[Held] = field(default_factory=list)  # what left replication through the outbox

    def seed(self, pid: int, state: PartitionState) -> None:
        """lin-kv holds `state` for partition `pid` (set by another node)."""
        self.kv.handle("n1", {"type": "write", "key": kv_key(pid), "value": msgspec.to_builtins(state)})

    def receive(self, *lines: tuple[str, Any], now: float) -> list[Any]:
        """Lines (sender, body) read together, as the node decodes them; what replication left of them."""
        decoded = [d for src, body in lines for d in decoding.decode_in_cluster(message(body, src=src))]
        return self.shell.take_own(decoded, now)

    def run(self, now: float, answer: bool = True) -> list[Sent]:
        """Carry n0's calls to lin-kv and lin-kv's replies back (or lose them all) until none is left; what
        n0 asked lin-kv."""
        asked = []
        while True:
            out = self.shell.ready()
            self.held += out.held
            self.sent += [sent for sent in out.send if sent.dest != LIN_KV]
            calls = [sent for sent in out.send if sent.dest == LIN_KV]
            asked += calls
            if not calls or not answer:
                return asked
            for call in calls:
                body = msgspec.json.decode(msgspec.json.encode(call.body))
                reply = self.kv.handle("n0", body)
                assert reply is not None
                line = message({**reply, "in_reply_to": body["msg_id"]}, src=LIN_KV, dest="n0")
                self.shell.take_own(decoding.decode_in_cluster(line), now)

    def write(self, key: str, now: float) -> int:
        """A client's send to `key` applied as the node applies it: stamped with its partition's next batch, in a
        transaction of its own; the commit."""
        log = self.storage.log
        log.stamp = self.shell.stamp
        try:
            with log.transaction():
                log.append_many([(key, '"v"')])
        finally:
            log.stamp = None
        self.shell.wrote(log.commits, [key], [], now)
        return log.commits


@pytest.fixture
def node(tmp_path) -> Iterator[Node]:
    storage = Storage.open(str(tmp_path / "log.db"))
    store = SqliteStore(storage, PLACEMENT)
    yield Node(storage, store, Replication("n0", PLACEMENT, store, TIMING, 0.0, random.Random(5)))
    storage.close()


def reads_of(asked: list[Sent]) -> list[str]:
    return sorted(sent.body.key for sent in asked if isinstance(sent.body, KvRead))


def replicate(part: int, epoch: int, covers: int, prev: tuple[int, int], batches: Sequence[tuple[int, int]] = (),
              after: int = 0, whole: bool = False, sent: float = 0.1) -> Replicate:
    """A leader's message; each batch (seq, offset) holds one message of the partition's key at that offset."""
    return Replicate(part=part, epoch=epoch, covers=covers, prev=prev, after=after, whole=whole, sent=sent,
                     sends=[(key_of(part), offset, seq, epoch, msgspec.Raw(b'"m"')) for seq, offset in batches])


def ack(dest: str, part: int, covers: int, sent: float = 0.0, file: str = "") -> Sent:
    return Sent("n0", dest, ReplicateOk(part=part, epoch=1, covers=covers, file=file, sent=sent))


def following(node: Node) -> None:
    """n0 started, and follows the leaders lin-kv names for both its partitions' epoch 1: n1 and n2."""
    node.seed(FIRST, PartitionState("n1", 1, ["n0", "n1"], 1))
    node.seed(SECOND, PartitionState("n2", 1, ["n0", "n2"], 1))
    node.shell.start(0.0)
    node.run(0.0)
    assert (node.shell.leader_of(K0), node.shell.leader_of(K2)) == ("n1", "n2")


# --- what replication takes ---------------------------------------------------------------------------

def test_take_own_steps_on_replicas_messages_and_lin_kvs_replies_and_hands_back_the_rest_in_order(node):
    node.shell.start(0.0)
    asked = [sent.body for sent in node.run(0.0, answer=False) if isinstance(sent.body, KvRead)]
    read_of_0 = next(body.msg_id for body in asked if body.key == kv_key(FIRST))
    lines = [
        ("c1", {"type": "send", "key": K0, "msg": 1, "msg_id": 1}),
        ("n1", Leadership(part=ELSEWHERE, state=PartitionState("n1", 1, ["n1", "n2"], 1))),
        ("n1", {"type": "send_ok", "in_reply_to": 7, "offset": 3}),  # another node's reply to a request sent on
        ("c2", {"type": "poll", "offsets": {K1: 0}, "msg_id": 2}),
        (LIN_KV, {"type": "error", "code": KEY_DOES_NOT_EXIST, "in_reply_to": read_of_0}),  # no state of partition 0
    ]
    decoded = [d for src, body in lines for d in decoding.decode_in_cluster(message(body, src=src))]
    assert node.shell.take_own(decoded, 0.1) == [decoded[0], decoded[2], decoded[3]]
    assert node.shell.leader_of(K1) == "n1"
    creating = [sent.body for sent in node.shell.ready().send if isinstance(sent.body, KvCas)]
    assert [(body.key, body.from_, body.create_if_not_exists) for body in creating] == [(kv_key(FIRST), None, True)]
    none_own = [decoded[0], decoded[2]]
    assert node.shell.take_own(none_own, 0.2) == none_own


def test_starting_asks_lin_kv_for_every_partitions_state_held_here_or_not(node):
    node.shell.start(0.0)
    assert reads_of(node.run(0.0, answer=False)) == [kv_key(0), kv_key(1), kv_key(2)]


@pytest.mark.parametrize(("src", "taken"), [("n2", True), ("n9", False), ("n0", False)],
                         ids=["another node of the cluster", "a node outside the cluster", "this node itself"])
def test_a_replicas_message_is_taken_only_from_another_node_of_the_cluster(node, src, taken):
    news = PartitionState("n2", 2, ["n2"], 2, ["n1"])
    node.receive((src, Leadership(part=ELSEWHERE, state=news)), now=0.1)
    assert node.shell.leader_of(K1) == ("n2" if taken else None)


def test_a_partition_held_elsewhere_is_routed_by_lin_kvs_newest_state_and_read_again_in_case_news_was_lost(node):
    node.seed(ELSEWHERE, PartitionState("n1", 1, ["n1", "n2"], 3))
    node.shell.start(0.0)
    node.run(0.0)
    assert node.shell.leader_of(K1) == "n1"
    assert node.shell.refusal([K1], True, 1, 0.0) == "not a replica of partition 1 (its leader: n1)"
    node.receive(("n2", Leadership(part=ELSEWHERE, state=PartitionState("n2", 0, ["n2"], 2))), now=0.1)
    assert node.shell.leader_of(K1) == "n1"  # older news
    node.shell.tick(0.25, 0.25)  # read again kv_retry after start: no state was known when it was first asked
    assert kv_key(ELSEWHERE) in reads_of(node.run(0.25))
    node.shell.tick(2.24, 2.24)
    assert kv_key(ELSEWHERE) not in reads_of(node.run(2.24))
    node.shell.tick(2.25, 2.25)  # every reread once a state is known
    assert kv_key(ELSEWHERE) in reads_of(node.run(2.25))


def test_a_lin_kv_call_never_answered_is_given_up_at_its_deadline_and_made_again(node):
    node.shell.start(0.0)
    node.run(0.0, answer=False)
    node.shell.tick(0.99, 0.99)
    assert node.run(0.99, answer=False) == []
    node.shell.tick(1.0, 1.0)  # kv_timeout after they were sent
    assert reads_of(node.run(1.0, answer=False)) == [kv_key(0), kv_key(1), kv_key(2)]


# --- a follower's transaction and answers -----------------------------------------------------------

def test_a_leaders_messages_read_together_are_stored_in_one_transaction_and_acknowledged_once_it_is_durable(node):
    following(node)
    before, file = node.storage.log.commits, node.store.file_id
    lines = [("n2", replicate(SECOND, 1, 5, (0, 0), [(1, 0)], whole=True)),
             ("n1", replicate(FIRST, 1, 3, (0, 0), [(1, 0)], whole=True)),
             ("n2", replicate(SECOND, 1, 6, (1, 1), [(2, 1)], after=5))]
    assert node.receive(*lines, now=0.1) == []
    node.run(0.1)
    assert node.storage.log.commits == before + 1  # both partitions' writes in one transaction
    assert node.store.batch(FIRST, 1) == [Entry(K0, 0, 1, 1, '"m"')]
    assert node.store.batch(SECOND, 1) + node.store.batch(SECOND, 2) == [Entry(K2, 0, 1, 1, '"m"'),
                                                                         Entry(K2, 1, 2, 1, '"m"')]
    # to each leader the answer covering the most, once the transaction is durable
    assert node.held == [Held(ack("n1", FIRST, 3, 0.1, file), before + 1),
                         Held(ack("n2", SECOND, 6, 0.1, file), before + 1)]
    node.receive(("n2", replicate(SECOND, 1, 7, (2, 1), after=6, sent=0.2)), now=0.2)  # a heartbeat
    node.run(0.2)
    assert node.held[2:] == [Held(ack("n2", SECOND, 7, 0.2, file), before + 1)]  # it says what that transaction wrote


def test_a_transaction_that_fails_takes_back_what_the_follower_took_and_answers_nothing(node):
    following(node)
    machine = node.shell.machines[SECOND]
    followed, epochs, before = machine.checkpoint()[0], machine.epochs.copy(), node.storage.log.commits
    whole = ("n2", replicate(SECOND, 1, 5, (0, 0), [(1, 0)], whole=True))
    clash = ("n2", replicate(SECOND, 1, 6, (1, 1), [(2, 0)], after=5))  # offset 0 again: the file refuses it
    node.receive(whole, clash, now=0.1)
    node.run(0.1)
    assert (node.held, node.storage.log.commits, node.store.batch(SECOND, 1)) == ([], before, [])
    assert (machine.follower.state, machine.epochs) == (followed, epochs)
    node.receive(whole, now=0.2)  # the leader sends it again
    node.run(0.2)
    assert node.store.batch(SECOND, 1) == [Entry(K2, 0, 1, 1, '"m"')]
    assert node.held == [Held(ack("n2", SECOND, 5, 0.1, node.store.file_id), before + 1)]


def refusal(dest: str, part: int, covers: int) -> Sent:
    return Sent("n0", dest, ReplicateRefused(part=part, epoch=1, covers=covers))


CUMULATIVE = {
    "a later answer covering more": ([ack("n1", 0, 4), ack("n1", 0, 6)], [1]),
    "an earlier answer covering more (a whole message that came late)": ([ack("n1", 0, 6), ack("n1", 0, 4)], [0]),
    "the same covers: the later, echoing the newer send": ([ack("n1", 0, 6, 1.0), ack("n1", 0, 6, 2.0)], [1]),
    "one for each partition": ([ack("n1", 0, 6), ack("n1", 2, 4)], [0, 1]),
    "one for each leader": ([ack("n1", 0, 6), ack("n2", 0, 4)], [0, 1]),
    "every refusal, in order": (
        [refusal("n1", 0, 5), ack("n1", 0, 4), refusal("n1", 0, 7), ack("n1", 0, 6)], [0, 2, 3]),
}


@pytest.mark.parametrize(("answers", "kept"), CUMULATIVE.values(), ids=CUMULATIVE.keys())
def test_only_the_acknowledgement_covering_the_most_goes_to_each_leader_for_each_partition(answers, kept):
    assert _cumulative(answers) == [answers[at] for at in kept]


# --- what a leader's client replies wait for ------------------------------------------------------------

def leading(node: Node) -> None:
    """n0 restarted while lin-kv names it leader of partition 0's epoch 1 with n1 in sync: it leads epoch 2,
    n1 holds its log, and any former lease has run out."""
    node.seed(FIRST, PartitionState("n0", 1, ["n0", "n1"], 1, files={"n0": node.store.file_id, "n1": N1_FILE}))
    node.shell.start(0.0)
    node.run(0.0)
    node.receive(("n1", ReplicateOk(part=FIRST, epoch=2, covers=1, file=N1_FILE)), now=0.1)
    node.run(0.1)
    assert node.shell.refusal([K0], True, 1, 0.5) is None


@pytest.mark.parametrize("then", ["n1 holds it", "n1 takes the lead"])
def test_a_client_write_waits_for_the_in_sync_set_and_leaves_once_it_holds_it_or_as_unknown_once_the_lead_is_lost(
        node, then):
    leading(node)
    commit = node.write(K0, 0.5)
    node.run(0.5)
    batch = node.sent[-1].body  # to n1 at once: the partition's first batch, in the epoch led
    assert node.sent[-1].dest == "n1" and isinstance(batch, Replicate)
    assert (batch.covers, [send[:4] for send in batch.sends]) == (commit, [(K0, 0, 1, 2)])
    outgoing = protocol.Outgoing(src="n0", dest="c1", body=protocol.SendOk(in_reply_to=1, offset=0))
    reply = Held(outgoing, commit)
    assert node.shell.hold([reply]) == []  # it waits
    if then == "n1 holds it":
        node.receive(("n1", ReplicateOk(part=FIRST, epoch=2, covers=commit, file=N1_FILE, sent=0.5)), now=0.6)
        released = reply
        assert node.shell.hw_of(FIRST) == commit
    else:
        node.receive(("n1", replicate(FIRST, 3, 9, (1, 2), whole=True, sent=0.6)), now=0.6)
        released = Held(errors.not_replicated(outgoing), commit)
        assert node.shell.leader_of(K0) == "n1"
    node.run(0.6)
    assert [held for held in node.held if isinstance(held.reply, protocol.Outgoing)] == [released]


def test_news_of_a_change_made_here_goes_to_every_other_node(node):
    node.shell.start(0.0)
    node.run(0.0)  # lin-kv has no state of partition 0: n0, its first replica, creates it
    told = [(sent.dest, sent.body.part) for sent in node.sent if isinstance(sent.body, Leadership)]
    assert sorted(told) == [("n1", FIRST), ("n2", FIRST)]
