"""PartitionMachine, events in and a Ready out, over a log held in lists: who may lead which epoch and when it
serves, whose messages are refused, elections, lost files, and what lin-kv's answers and silences change."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import pytest
from replication.test_leading import F0, F1, FILES, PID, REPLICAS, START, TIMING, ListLog, S

from kafka_node.replication import membership
from kafka_node.replication.events import FromFollower, FromLeader, KvAnswered, KvExpired, Ready, Tick, Told
from kafka_node.replication.partition import PartitionMachine, Role
from kafka_node.wire import Sent
from kafka_node.wire.kv import KEY_DOES_NOT_EXIST
from kafka_node.wire.replica import Leadership, PartitionState, Replicate, ReplicateOk, ReplicateRefused

NODES = [*REPLICAS, "n3"]  # n3 holds no replica of the partition, yet hears of every change to it
LED = S(REPLICAS)  # lin-kv's state: n0 leads epoch 2, every replica in sync with its file (version 5)


def state(leader: str | None, epoch: int, isr: list[str], version: int) -> PartitionState:
    """lin-kv's state naming `leader` of `epoch`, the in-sync set `isr` with their files."""
    in_sync = S(isr, version, files={node: FILES[node] for node in isr})
    return msgspec.structs.replace(in_sync, leader=leader, epoch=epoch)


def machine(me: str = "n0", file: str | None = None) -> PartitionMachine:
    """A new incarnation of `me`'s replica (its log, START batches of epoch 1, in `file`: its own unless
    named), started at time 0: it has asked lin-kv for the partition's state."""
    m = PartitionMachine(PID, me, REPLICAS, NODES, 2, TIMING, ListLog(file_id=FILES[me] if file is None else file), 0.0)
    m.start(0.0)
    assert [(call.pid, call.is_cas) for call in m.ready().kv] == [(PID, False)]
    return m


def kv(m: PartitionMachine, answer: PartitionState | None = None, error: int | None = None, now: float = 0.1) -> Ready:
    """lin-kv answers the machine's call in flight; what that gave."""
    assert m.lin.call is not None
    m.step(KvAnswered(m.lin.call, answer, error, now))
    return m.ready()


def applied(m: PartitionMachine, now: float = 0.1) -> Ready:
    """The compare-and-set in flight applied."""
    assert m.lin.call is not None and m.lin.call.is_cas
    return kv(m, m.lin.call.to, None, now)


def cas(ready: Ready) -> list[tuple[PartitionState | None, PartitionState | None]]:
    """(from, to) of each compare-and-set asked of lin-kv."""
    return [(call.from_, call.to) for call in ready.kv if call.is_cas]


def reads(ready: Ready) -> int:
    return sum(not call.is_cas for call in ready.kv)


def announced(ready: Ready) -> dict[str, PartitionState]:
    """The nodes told of a change to lin-kv's state, and the state each was told."""
    return {sent.dest: sent.body.state for sent in ready.send if isinstance(sent.body, Leadership)}


def whole(epoch: int, covers: int, sent: float) -> Replicate:
    """A leader's whole message after the batches every replica holds (START, of epoch 1)."""
    return Replicate(part=PID, epoch=epoch, covers=covers, prev=(START, 1), whole=True, sent=sent)


def ack(node: str, epoch: int, sent: float, now: float) -> FromFollower:
    return FromFollower(node, ReplicateOk(part=PID, epoch=epoch, covers=START, file=FILES[node], sent=sent), now)


def leader() -> PartitionMachine:
    """n0 restarted while lin-kv names it leader of epoch 2: it leads epoch 3 (asked at 0.1), and both
    followers answered its probes at 0.2."""
    m = machine()
    kv(m, LED)
    applied(m)
    m.step(ack("n1", 3, 0.1, 0.2))
    m.step(ack("n2", 3, 0.1, 0.2))
    m.ready()
    assert m.role is Role.LEADER and m.lead is not None and m.lead.epoch == 3
    return m


# --- starting ------------------------------------------------------------------------------------

def test_a_new_incarnation_takes_nothing_from_a_leader_before_lin_kv_names_the_latest_epoch():
    m = machine("n1")
    m.step(FromLeader("n0", whole(2, START, 0.05), 0.05))
    ready = m.ready()
    assert (ready.answers, ready.persist, m.role) == ([], [], Role.STARTING)
    ready = kv(m, LED)
    assert (m.role, ready.led, ready.learned) == (Role.FOLLOWER, ("n0", 2), LED)
    m.step(FromLeader("n0", whole(2, START, 0.15), 0.15))  # sent again
    answer = ReplicateOk(part=PID, epoch=2, covers=START, file=F1, sent=0.15)
    assert m.ready().answers == [Sent("n1", "n0", answer)]


def test_only_the_first_replica_creates_the_partitions_state_the_others_read_again_later():
    first = machine("n0")
    ready = kv(first, None, KEY_DOES_NOT_EXIST, now=0.5)  # lin-kv holds no state of the partition
    assert cas(ready) == [(None, membership.created("n0", F0, 2, REPLICAS))]  # epoch 2: its log holds epoch 1
    assert first.proposed_epochs == {2}
    other = machine("n1")
    assert kv(other, None, KEY_DOES_NOT_EXIST, now=0.5).kv == []
    other.step(Tick(0.74, 0.74))
    assert other.ready().kv == []
    other.step(Tick(0.75, 0.75))  # kv_retry later
    assert reads(other.ready()) == 1


def test_the_partitions_creation_once_applied_is_led_at_once_and_announced_to_every_other_node():
    m = machine("n0")
    kv(m, None, KEY_DOES_NOT_EXIST)
    created = membership.created("n0", F0, 2, REPLICAS)
    ready = applied(m, now=0.2)
    assert announced(ready) == {"n1": created, "n2": created, "n3": created}
    assert sorted(sent.dest for sent in ready.send if isinstance(sent.body, Replicate)) == ["n1", "n2"]  # probes
    assert (m.role, ready.led, ready.learned) == (Role.LEADER_STARTING, ("n0", 2), created)
    assert m.lead is not None and m.lead.serve_after == 0.2  # nothing was acknowledged before: no lease to wait out


def test_a_replica_named_leader_of_an_epoch_it_never_asked_for_leads_the_next_and_serves_once_it_may():
    m = machine("n0")
    ready = kv(m, LED)  # named by lin-kv as a former incarnation left it
    assert cas(ready) == [(LED, membership.resumed(LED, "n0"))] and m.lead is None
    ready = applied(m)
    assert m.role is Role.LEADER_STARTING and m.lead is not None and m.lead.epoch == 3
    assert announced(ready) == {node: membership.resumed(LED, "n0") for node in ("n1", "n2", "n3")}
    m.step(ack("n1", 3, 0.1, 0.2))
    assert (m.role, m.ready().hw) == (Role.LEADER_STARTING, None)
    m.step(ack("n2", 3, 0.1, 0.2))
    assert (m.role, m.ready().hw) == (Role.LEADER, START)  # every in-sync follower holds its log
    # a former leader may serve reads under its lease until `lease` after this replica last heard from it
    assert "starting" in (m.refusal(True, START, 0.49) or "")
    assert m.refusal(True, START, 0.5) is None


# --- leading and following -----------------------------------------------------------------------

@dataclass
class FromOther:
    epoch: int  # the epoch of n1's message to n0, leader of epoch 3
    answer: ReplicateOk | ReplicateRefused
    role: Role  # n0's afterwards


FROM_OTHERS = {
    "its own epoch: refused as stale": FromOther(
        3, ReplicateRefused(part=PID, epoch=3, covers=9, stale=True, file=F0, sent=1.0), Role.LEADER),
    "an older epoch: refused as stale": FromOther(
        2, ReplicateRefused(part=PID, epoch=3, covers=9, stale=True, file=F0, sent=1.0), Role.LEADER),
    "a newer epoch: it stops leading and follows": FromOther(
        4, ReplicateOk(part=PID, epoch=4, covers=9, file=F0, sent=1.0), Role.FOLLOWER),
}


@pytest.mark.parametrize("case", FROM_OTHERS.values(), ids=FROM_OTHERS.keys())
def test_a_leader_refuses_another_leaders_message_of_its_epoch_or_older_and_follows_a_newer_one(case):
    m = leader()
    m.step(FromLeader("n1", whole(case.epoch, 9, 1.0), 1.1))
    ready = m.ready()
    assert ready.answers == [Sent("n0", "n1", case.answer)]
    assert m.role is case.role
    assert ready.deposed is (case.role is Role.FOLLOWER)
    assert m.leader() == ("n0" if case.role is Role.LEADER else "n1")


@dataclass
class Silence:
    isr: list[str]  # lin-kv's in-sync set (n0 leading epoch 2, files as lin-kv names them)
    now: float
    heard_until: float  # n1 last heard n0 at 0.5
    asks_to_lead: bool
    reads: int


SILENCES = {
    "silent for election: an eligible follower asks to lead": Silence(REPLICAS, 1.2, 1.2, True, 0),
    "heard within election: nothing": Silence(REPLICAS, 1.0, 1.0, False, 0),
    "silence counts only up to what it has read": Silence(REPLICAS, 5.0, 1.0, False, 0),
    "silent, not eligible: it only reads lin-kv": Silence(["n0", "n2"], 1.2, 1.2, False, 1),
}


@pytest.mark.parametrize("case", SILENCES.values(), ids=SILENCES.keys())
def test_an_eligible_follower_that_has_not_heard_its_leader_for_election_asks_to_lead(case):
    m = machine("n1")
    known = state("n0", 2, case.isr, 5)
    kv(m, known, now=0.5)
    m.step(Tick(case.now, case.heard_until))
    ready = m.ready()
    assert cas(ready) == ([(known, membership.elected(known, "n1", F1))] if case.asks_to_lead else [])
    assert reads(ready) == case.reads
    assert m.role is (Role.CANDIDATE if case.asks_to_lead else Role.FOLLOWER)


@pytest.mark.parametrize(("me", "file", "asked"), [
    ("n1", "file-1b", membership.forsaken(LED, "n1")),
    ("n0", "file-0b", membership.forsaken(LED, "n0")),  # the leader named: nobody leads until an eligible one takes it
    ("n1", F1, None),
], ids=["a follower", "the replica named leader", "a replica holding its file asks nothing"])
def test_a_replica_that_lost_its_file_asks_lin_kv_to_drop_it_from_the_eligible_replicas(me, file, asked):
    m = machine(me, file)
    ready = kv(m, LED)
    assert cas(ready) == ([(LED, asked)] if asked is not None else [])
    assert m.lead is None and m.role is Role.FOLLOWER


def test_news_from_another_node_is_taken_only_if_newer_and_then_followed():
    m = machine("n1")
    kv(m, LED)
    newer = state("n2", 3, ["n1", "n2"], 6)
    m.step(Told(newer, 1.0))
    ready = m.ready()
    assert (ready.learned, ready.led, m.leader()) == (newer, ("n2", 3), "n2")
    m.step(Told(state("n0", 9, ["n0"], 4), 1.1))  # a state lin-kv held before
    ready = m.ready()
    assert (ready.learned, ready.led, m.known, m.leader()) == (None, None, newer, "n2")


# --- the preferred replica takes its lead back ----------------------------------------------------

def following_n1(me: str, isr: list[str], at: float = 0.5) -> tuple[PartitionMachine, PartitionState]:
    """`me`'s replica, told at `at` that n1 leads epoch 3 with `isr` in sync (n0, replicas[0], is preferred)."""
    m = machine(me)
    known = state("n1", 3, isr, 6)
    kv(m, known, now=at)
    m.ready()
    return m, known


def heard_until(m: PartitionMachine, until: float, step: float = 0.1) -> Ready:
    """Ticks up to `until`, the leader heard just before each (a heartbeat's worth); what they gave."""
    now, ready = m.follower.heard, Ready()
    while now < until - 1e-9:
        now = min(until, now + step)
        m.follower.heard = now  # as a heartbeat of n1's taken then
        m.step(Tick(now, now))
        got = m.ready()
        ready.kv += got.kv
    return ready


def test_the_preferred_replica_in_sync_for_rebalance_asks_to_lead_the_next_epoch_keeping_the_leader_in_sync():
    m, known = following_n1("n0", REPLICAS)
    assert cas(heard_until(m, 0.5 + TIMING.rebalance - 0.1)) == [], "not in sync long enough yet"
    ready = heard_until(m, 0.5 + TIMING.rebalance)
    assert cas(ready) == [(known, membership.resumed(known, "n0"))] and m.role is Role.CANDIDATE
    taken = membership.resumed(known, "n0")
    assert (taken.leader, taken.epoch, taken.isr) == ("n0", 4, REPLICAS), "n1 stays in sync: it is alive"
    applied(m, 0.5 + TIMING.rebalance)
    assert m.role is Role.LEADER_STARTING and m.lead is not None and m.lead.epoch == 4


@pytest.mark.parametrize(("me", "isr"), [("n1", ["n1", "n2"]), ("n2", REPLICAS), ("n0", ["n1", "n2"])],
                         ids=["the leader itself", "a replica not preferred", "the preferred one out of the set"])
def test_no_other_replica_asks_to_lead_while_its_leader_is_heard(me, isr):
    m, _ = following_n1(me, isr)
    assert cas(heard_until(m, 5.0)) == []


def test_leaving_the_in_sync_set_starts_the_preferred_replicas_wait_again():
    m, _ = following_n1("n0", REPLICAS)
    heard_until(m, 1.5)
    out = state("n1", 3, ["n1", "n2"], 7)
    m.step(Told(out, 1.5))
    back = state("n1", 3, REPLICAS, 8)
    m.step(Told(back, 1.6))
    m.ready()
    assert cas(heard_until(m, 1.6 + TIMING.rebalance - 0.1)) == []
    assert cas(heard_until(m, 1.6 + TIMING.rebalance)) == [(back, membership.resumed(back, "n0"))]


# --- a leader's calls to lin-kv --------------------------------------------------------------------

def test_a_follower_answering_from_a_newer_epoch_makes_its_leader_ask_lin_kv_who_leads():
    m = leader()
    m.step(FromFollower("n2", ReplicateRefused(part=PID, epoch=2, covers=START, stale=True, file=FILES["n2"],
                                               sent=0.1), 0.3))
    assert m.ready().kv == [] and m.role is Role.LEADER  # an older epoch's answer: nothing to ask
    m.step(FromFollower("n1", ReplicateRefused(part=PID, epoch=4, covers=START, stale=True, file=F1, sent=0.1), 0.3))
    assert reads(m.ready()) == 1


def test_a_leader_stops_leading_once_two_calls_to_lin_kv_in_a_row_go_unanswered():
    m = leader()
    m.step(FromFollower("n1", ReplicateRefused(part=PID, epoch=4, covers=START, stale=True, file=F1, sent=0.1), 0.3))
    m.ready()
    assert m.lin.call is not None
    m.step(KvExpired(m.lin.call, 1.3))
    ready = m.ready()
    assert (reads(ready), ready.deposed, m.role) == (1, False, Role.LEADER)
    assert m.lin.call is not None
    m.step(KvExpired(m.lin.call, 2.3))
    ready = m.ready()
    assert (ready.deposed, m.role, m.lead, m.leader()) == (True, Role.FOLLOWER, None, None)
    assert 3 not in m.proposed_epochs  # never to lead epoch 3 again, whatever lin-kv says of it


def test_a_leader_asks_lin_kv_whether_it_still_leads_and_follows_the_leader_named_there():
    m = leader()
    m.step(Tick(1.0, 1.0))
    assert reads(m.ready()) == 1
    assert m.known is not None
    elected = state("n1", 4, ["n1", "n2"], m.known.version + 1)  # an election applied after its sender restarted
    ready = kv(m, elected, now=1.01)
    assert (ready.deposed, m.role, m.lead, m.leader()) == (True, Role.FOLLOWER, None, "n1")


def test_a_leaders_change_of_the_in_sync_set_is_asked_of_lin_kv_and_taken_once_applied():
    m = leader()
    led = m.known
    assert led is not None and m.lead is not None
    m.step(Tick(1.0, 1.0))  # heartbeats to both, and the leader asks lin-kv whether it still leads
    assert reads(m.ready()) == 1
    kv(m, led, now=1.01)  # it does
    m.step(ack("n1", 3, 1.0, 1.05))  # n2 never answers its heartbeat
    m.ready()
    m.step(Tick(1.6, 1.6))
    shrunk = membership.shrunk(led, ["n2"], [])
    assert cas(m.ready()) == [(led, shrunk)]
    assert m.lead.proposal == shrunk  # until lin-kv answers, the leader waits for the members of both
    ready = applied(m, 1.7)
    assert (m.lead.state, m.lead.proposal, ready.learned) == (shrunk, None, shrunk)
    assert announced(ready) == {"n1": shrunk, "n2": shrunk, "n3": shrunk}
