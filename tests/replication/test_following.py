"""Follower.take checks a leader's message against the log as an EpochCache holds it: each refusal says
where the logs part, and a message taken gives exactly the writes that make this log the leader's."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import msgspec
import pytest

from kafka_node.replication.epochs import EpochCache
from kafka_node.replication.events import Append, Entry, MergeCommitted, TruncateAfter
from kafka_node.replication.following import Follower, FollowState
from kafka_node.wire.replica import Replicate, ReplicateOk, ReplicateRefused

PID = 3
FILE = "file-f"
SENT = 12.5
NOW = 40.0


def sends(seq: int, epoch: int, count: int = 1) -> list[tuple]:
    """Batch `seq` of `epoch`: `count` messages of key k at offsets seq*10, seq*10+1, ..."""
    return [("k", seq * 10 + i, seq, epoch, msgspec.Raw(f'"m{seq}.{i}"'.encode())) for i in range(count)]


def entries(seq: int, epoch: int, count: int = 1) -> list[Entry]:
    return [Entry("k", seq * 10 + i, seq, epoch, f'"m{seq}.{i}"') for i in range(count)]


def message(epoch: int, covers: int, prev: tuple[int, int], batches=(), after: int = 0, whole: bool = False,
            commits: dict[str, int] | None = None) -> Replicate:
    return Replicate(part=PID, epoch=epoch, covers=covers, prev=prev, after=after,
                     sends=[send for batch in batches for send in batch], commits=commits or {}, whole=whole, sent=SENT)


def ok(epoch: int, covers: int, through: int = 0) -> ReplicateOk:
    return ReplicateOk(part=PID, epoch=epoch, covers=covers, file=FILE, sent=SENT, through=through)


def refused(epoch: int, covers: int, at: int, at_epoch: int, stale: bool = False) -> ReplicateRefused:
    return ReplicateRefused(part=PID, epoch=epoch, covers=covers, at=at, at_epoch=at_epoch, stale=stale, file=FILE, sent=SENT)


def cache(epochs: list[int]) -> EpochCache:
    built = EpochCache()
    for seq, epoch in enumerate(epochs, start=1):
        built.append(seq, epoch)
    return built


@dataclass
class Case:
    log: list[int]  # the epoch of each batch held, from seq 1
    state: FollowState  # what the follower took before
    message: Replicate
    answer: ReplicateOk | ReplicateRefused
    ops: list = field(default_factory=list)
    after: list[int] | None = None  # the log afterwards (None: unchanged)
    followed: tuple[int, bool] | None = None  # (applied, synced) afterwards (None: unchanged)


CASES = {
    # --- refused -----------------------------------------------------------------------------
    "a stale epoch is refused with stale and the follower's epoch": Case(
        log=[1, 1], state=FollowState("n0", 3),
        message=message(2, 5, (2, 1), [sends(3, 2)], whole=True),
        answer=refused(3, 5, at=0, at_epoch=0, stale=True)),
    "a live batch not chained after the last taken is refused at the last seq": Case(
        log=[2, 2, 2], state=FollowState("n0", 2, applied=7, synced=True),
        message=message(2, 9, (3, 2), [sends(4, 2)], after=8),
        answer=refused(2, 9, at=3, at_epoch=2)),
    "a live batch before any whole message of the epoch is refused at the last seq": Case(
        log=[1, 2, 2], state=FollowState("n0", 2),
        message=message(2, 1, (3, 2), [sends(4, 2)], after=0),
        answer=refused(2, 1, at=3, at_epoch=2)),
    "a live batch of a newer epoch is refused in that epoch": Case(
        log=[2, 2], state=FollowState("n0", 2, applied=4, synced=True),
        message=message(3, 5, (2, 2), [sends(3, 3)], after=4),
        answer=refused(3, 5, at=2, at_epoch=2), followed=(0, False)),
    "a whole message whose prev the log lacks is refused at the last seq": Case(
        log=[1, 1, 1], state=FollowState("n0", 2),
        message=message(2, 4, (5, 2), [sends(6, 2)], whole=True),
        answer=refused(2, 4, at=3, at_epoch=1)),
    "a whole message after prev on an empty log is refused at 0": Case(
        log=[], state=FollowState("n0", 2),
        message=message(2, 4, (2, 1), [sends(3, 2)], whole=True),
        answer=refused(2, 4, at=0, at_epoch=0)),
    "a whole message whose prev has another epoch here is refused at prev - 1": Case(
        log=[1, 1, 1, 1], state=FollowState("n0", 3),
        message=message(3, 6, (3, 2), [sends(4, 3)], whole=True),
        answer=refused(3, 6, at=2, at_epoch=1)),
    "batches not following prev are refused and change nothing": Case(
        log=[1, 1], state=FollowState("n0", 2),
        message=message(2, 6, (2, 1), [sends(4, 2)], whole=True),
        answer=refused(2, 6, at=2, at_epoch=1)),
    "batches with a gap between them are refused and change nothing": Case(
        log=[1, 1, 1, 1], state=FollowState("n0", 2),
        message=message(2, 6, (2, 1), [sends(3, 2), sends(5, 2)], whole=True),
        answer=refused(2, 6, at=4, at_epoch=1)),
    "batches going back in epoch are refused and change nothing": Case(
        log=[1, 1, 1, 1], state=FollowState("n0", 3),
        message=message(3, 6, (2, 1), [sends(3, 3), sends(4, 2)], whole=True),
        answer=refused(3, 6, at=4, at_epoch=1)),
    "a batch older than prev's epoch is refused": Case(
        log=[2, 2], state=FollowState("n0", 3),
        message=message(3, 6, (2, 2), [sends(3, 1)], whole=True),
        answer=refused(3, 6, at=2, at_epoch=2)),
    "a batch newer than the message's epoch is refused": Case(
        log=[2, 2], state=FollowState("n0", 3),
        message=message(3, 6, (2, 2), [sends(3, 4)], whole=True),
        answer=refused(3, 6, at=2, at_epoch=2)),
    "a batch mixing epochs is refused": Case(
        log=[2, 2], state=FollowState("n0", 3),
        message=message(3, 6, (2, 2), [[*sends(3, 2), ("k", 31, 3, 3, msgspec.Raw(b'"x"'))]], whole=True),
        answer=refused(3, 6, at=2, at_epoch=2)),
    # --- taken -------------------------------------------------------------------------------
    "a whole message appends its batches": Case(
        log=[1, 1], state=FollowState("n0", 2),
        message=message(2, 5, (2, 1), [sends(3, 2, count=2), sends(4, 2)], whole=True),
        answer=ok(2, 5), ops=[Append(PID, entries(3, 2, count=2)), Append(PID, entries(4, 2))],
        after=[1, 1, 2, 2], followed=(5, True)),
    "a whole message truncates what diverges before appending": Case(
        log=[1, 1, 1, 1], state=FollowState("n0", 3),
        message=message(3, 8, (2, 1), [sends(3, 2), sends(4, 3)], whole=True),
        answer=ok(3, 8), ops=[TruncateAfter(PID, 2), Append(PID, entries(3, 2)), Append(PID, entries(4, 3))],
        after=[1, 1, 2, 3], followed=(8, True)),
    "a whole message truncates what lies past its end": Case(
        log=[1, 1, 1, 1, 1], state=FollowState("n0", 2),
        message=message(2, 3, (2, 1), [sends(3, 1)], whole=True),
        answer=ok(2, 3), ops=[TruncateAfter(PID, 3)], after=[1, 1, 1], followed=(3, True)),
    "a whole message truncates what diverges and nothing past it is left": Case(
        log=[1, 1, 1, 1, 1], state=FollowState("n0", 3),
        message=message(3, 6, (2, 1), [sends(3, 2)], whole=True),
        answer=ok(3, 6), ops=[TruncateAfter(PID, 2), Append(PID, entries(3, 2))], after=[1, 1, 2], followed=(6, True)),
    "a whole message of this epoch that comes late (covers below what was applied) drops nothing sent after it": Case(
        log=[1, 2, 3, 3], state=FollowState("n0", 3, applied=9, synced=True),
        message=message(3, 6, (1, 1), [sends(2, 2)], whole=True),
        answer=ok(3, 6)),
    "a whole message of this epoch that comes late to a restarted follower drops nothing sent after it": Case(
        log=[1, 2, 3, 3], state=FollowState("n0", 3),
        message=message(3, 6, (1, 1), [sends(2, 2)], whole=True),
        answer=ok(3, 6), followed=(6, True)),
    "a whole message drops the batches of an older epoch past its end": Case(
        log=[1, 2, 2, 2], state=FollowState("n0", 3),
        message=message(3, 6, (1, 1), [sends(2, 2)], whole=True),
        answer=ok(3, 6), ops=[TruncateAfter(PID, 2)], after=[1, 2], followed=(6, True)),
    "an empty whole message from the empty log truncates everything": Case(
        log=[1, 1], state=FollowState("n0", 2),
        message=message(2, 1, (0, 0), whole=True),
        answer=ok(2, 1), ops=[TruncateAfter(PID, 0)], after=[], followed=(1, True)),
    "a whole message the log already holds writes nothing": Case(
        log=[1, 2, 2], state=FollowState("n0", 2),
        message=message(2, 4, (1, 1), [sends(2, 2), sends(3, 2)], whole=True),
        answer=ok(2, 4), followed=(4, True)),
    "a whole message's committed offsets are merged after its batches": Case(
        log=[1], state=FollowState("n0", 2),
        message=message(2, 4, (1, 1), [sends(2, 2)], whole=True, commits={"k": 20, "j": 3}),
        answer=ok(2, 4), ops=[Append(PID, entries(2, 2)), MergeCommitted({"k": 20, "j": 3})],
        after=[1, 2], followed=(4, True)),
    "a whole message of a newer epoch is taken in that epoch": Case(
        log=[1, 1], state=FollowState("n0", 1, applied=9, synced=True),
        message=message(2, 3, (2, 1), [sends(3, 2)], whole=True),
        answer=ok(2, 3), ops=[Append(PID, entries(3, 2))], after=[1, 1, 2], followed=(3, True)),
    "a live batch chained after the last taken appends": Case(
        log=[2, 2], state=FollowState("n0", 2, applied=6, synced=True),
        message=message(2, 7, (2, 2), [sends(3, 2)], after=6, commits={"k": 30}),
        answer=ok(2, 7), ops=[Append(PID, entries(3, 2)), MergeCommitted({"k": 30})], after=[2, 2, 2],
        followed=(7, True)),
    "a heartbeat chained after the last taken is acknowledged": Case(
        log=[2, 2], state=FollowState("n0", 2, applied=6, synced=True),
        message=message(2, 8, (2, 2), after=6),
        answer=ok(2, 8), followed=(8, True)),
    "a catch-up part (covers 0) appends without changing what was applied, and says its last batch": Case(
        log=[2], state=FollowState("n0", 2),
        message=message(2, 0, (1, 2), [sends(2, 2), sends(3, 2)]),
        answer=ok(2, 0, through=3), ops=[Append(PID, entries(2, 2)), Append(PID, entries(3, 2))], after=[2, 2, 2],
        followed=(0, False)),
    "a duplicate is acknowledged without writes": Case(
        log=[2, 2], state=FollowState("n0", 2, applied=6, synced=True),
        message=message(2, 5, (1, 2), [sends(2, 2)], after=4),
        answer=ok(2, 5), followed=(6, True)),
    "a duplicate of the last message taken is acknowledged without writes": Case(
        log=[2, 2], state=FollowState("n0", 2, applied=6, synced=True),
        message=message(2, 6, (0, 0), [sends(1, 2), sends(2, 2)], whole=True, commits={"k": 20}),
        answer=ok(2, 6), followed=(6, True)),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_take_gives_exactly_the_writes_answer_and_log_of_its_case(case):
    follower = Follower(PID, FILE, 0.0)
    follower.state = dataclasses.replace(case.state)
    epochs = cache(case.log)
    ops, answer = follower.take("n0", case.message, epochs, NOW)
    assert answer == case.answer
    assert ops == case.ops
    assert epochs == cache(case.log if case.after is None else case.after)
    applied, synced = (case.state.applied, case.state.synced) if case.followed is None else case.followed
    assert (follower.state.applied, follower.state.synced) == (applied, synced)
    assert follower.state.epoch == answer.epoch


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_leader_counts_as_heard_unless_its_epoch_is_stale(case):
    follower = Follower(PID, FILE, 0.0)
    follower.state = dataclasses.replace(case.state)
    follower.take("n0", case.message, cache(case.log), NOW)
    stale = isinstance(case.answer, ReplicateRefused) and case.answer.stale
    assert follower.heard == (0.0 if stale else NOW)
    assert follower.state.leader == "n0"


def test_a_refused_message_leaves_a_log_that_took_messages_before_unchanged():
    follower = Follower(PID, FILE, 0.0)
    epochs = EpochCache()
    ops, answer = follower.take("n0", message(1, 2, (0, 0), [sends(1, 1), sends(2, 1)], whole=True), epochs, 1.0)
    assert answer == ok(1, 2) and len(ops) == 2
    before = epochs.copy()
    _, answer = follower.take("n0", message(1, 0, (2, 1), [sends(3, 1), sends(4, 2)]), epochs, 2.0)
    assert isinstance(answer, ReplicateRefused)
    assert epochs == before
    ops, answer = follower.take("n0", message(1, 3, (2, 1), [sends(3, 1)], after=2), epochs, 3.0)
    assert answer == ok(1, 3)
    assert ops == [Append(PID, entries(3, 1))]
    assert epochs == cache([1, 1, 1])


def test_two_messages_in_a_row_see_each_others_batches_through_the_cache():
    follower = Follower(PID, FILE, 0.0)
    epochs = cache([1, 1, 1])
    ops, answer = follower.take("n1", message(2, 4, (1, 1), [sends(2, 2)], whole=True), epochs, 1.0)
    assert answer == ok(2, 4)
    assert ops == [TruncateAfter(PID, 1), Append(PID, entries(2, 2))]
    ops, answer = follower.take("n1", message(2, 5, (2, 2), [sends(3, 2)], after=4), epochs, 1.0)
    assert answer == ok(2, 5)
    assert ops == [Append(PID, entries(3, 2))]
    assert epochs == cache([1, 2, 2])


def test_parts_in_flight_are_taken_in_a_row_each_answered_with_its_last_batch():
    follower = Follower(PID, FILE, 0.0)
    epochs = EpochCache()
    first, answer = follower.take("n0", message(1, 0, (0, 0), [sends(1, 1), sends(2, 1)]), epochs, 1.0)
    assert answer == ok(1, 0, through=2)
    second, answer = follower.take("n0", message(1, 0, (2, 1), [sends(3, 1)]), epochs, 1.0)
    assert answer == ok(1, 0, through=3)
    assert first + second == [Append(PID, entries(1, 1)), Append(PID, entries(2, 1)), Append(PID, entries(3, 1))]
    ops, answer = follower.take("n0", message(1, 0, (4, 1), [sends(5, 1)]), epochs, 1.0)  # the part before it was lost
    assert (ops, answer) == ([], refused(1, 0, at=3, at_epoch=1))
    assert epochs == cache([1, 1, 1])
