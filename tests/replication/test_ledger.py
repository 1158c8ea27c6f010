"""AckLedger releases a reply only once every partition its commit wrote holds that commit, each
partition on its own; a deposition or expiry turns the replies into 13, remembered for failed_memory."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafka_node import errors, protocol
from kafka_node.outbox import Held
from kafka_node.replication.ledger import AckLedger

MEMORY = 4.0
FAR = 1000.0


def reply(commit: int, msg_id: int | None = None) -> Held:
    body = protocol.SendOk(in_reply_to=msg_id if msg_id is not None else 100 + commit, offset=commit * 10)
    return Held(protocol.Outgoing("n0", "c1", body=body), commit)


def failed(held: Held) -> Held:
    return Held(errors.not_replicated(held.reply), held.commit)


def test_a_failed_reply_is_an_error_13_to_the_same_request():
    body = failed(reply(1, msg_id=7)).reply.body
    assert isinstance(body, protocol.Error)
    assert (body.code, body.in_reply_to) == (13, 7)


def test_a_commit_writing_two_partitions_waits_for_both():
    ledger = AckLedger(MEMORY)
    ledger.expect(1, {0, 1}, FAR)
    assert ledger.hold([reply(1)]) == []
    ledger.advance(0, 1)
    assert ledger.take() == []
    assert len(ledger) == 1
    ledger.advance(1, 1)
    assert ledger.take() == [reply(1)]
    assert len(ledger) == 0


@pytest.mark.parametrize("advanced", [[], [0]])
def test_one_partitions_deposition_fails_a_commit_writing_two_with_error_13(advanced):
    ledger = AckLedger(MEMORY)
    ledger.expect(1, {0, 1}, FAR)
    held = [reply(1, msg_id=5), reply(1, msg_id=6)]
    assert ledger.hold(held) == []
    for pid in advanced:
        ledger.advance(pid, 1)
    ledger.deposed(1, 2.0)
    assert ledger.take() == [failed(held[0]), failed(held[1])]
    assert len(ledger) == 0
    ledger.advance(0, 1)
    ledger.advance(1, 1)
    assert ledger.take() == []


def test_deposition_of_a_partition_already_holding_the_commit_fails_nothing():
    ledger = AckLedger(MEMORY)
    ledger.expect(1, {0, 1}, FAR)
    ledger.hold([reply(1)])
    ledger.advance(1, 1)
    ledger.deposed(1, 2.0)
    assert ledger.take() == []
    ledger.advance(0, 1)
    assert ledger.take() == [reply(1)]


def test_deposition_fails_only_the_commits_waiting_on_that_partition():
    ledger = AckLedger(MEMORY)
    ledger.expect(1, {0}, FAR)
    ledger.expect(2, {1}, FAR)
    ledger.hold([reply(1), reply(2)])
    ledger.deposed(1, 2.0)
    assert ledger.take() == [failed(reply(2))]
    ledger.advance(0, 1)
    assert ledger.take() == [reply(1)]


def test_expiry_fails_the_oldest_first_and_only_those_past_their_deadline():
    ledger = AckLedger(MEMORY)
    for commit, deadline in [(1, 5.0), (2, 6.0), (3, 7.0)]:
        ledger.expect(commit, {0}, deadline)
    assert ledger.hold([reply(3), reply(2), reply(1)]) == []
    ledger.expire(4.9)
    assert ledger.take() == []
    ledger.expire(6.5)
    assert ledger.take() == [failed(reply(1)), failed(reply(2))]
    assert len(ledger) == 1
    ledger.advance(0, 3)
    assert ledger.take() == [reply(3)]


def test_expiry_leaves_a_commit_already_held_alone():
    ledger = AckLedger(MEMORY)
    ledger.expect(1, {0}, 5.0)
    ledger.advance(0, 1)
    ledger.expire(9.0)
    assert ledger.hold([reply(1)]) == [reply(1)]
    assert ledger.take() == []


@pytest.mark.parametrize(("late_by", "fails"), [
    (0.0, True),
    (MEMORY / 2, True),
    (MEMORY, True),
    (MEMORY + 0.01, False),
    (MEMORY * 3, False),
])
def test_a_reply_held_after_its_commit_failed_is_13_within_failed_memory_then_passes_once_held(late_by, fails):
    ledger = AckLedger(MEMORY)
    ledger.expect(1, {0}, 5.0)
    ledger.expire(5.0)
    assert ledger.take() == []  # no reply was held yet
    ledger.advance(0, 1)  # the in-sync set came to hold it after all
    ledger.expire(5.0 + late_by)
    late = reply(1)
    assert ledger.hold([late]) == [failed(late) if fails else late]
    assert ledger.take() == []


@pytest.mark.parametrize("then", ["nothing", "a lower watermark", "another partition's"])
def test_a_commit_failed_stays_failed_past_failed_memory_while_its_partition_does_not_hold_it(then):
    """A listing waiting for a commit given up on must never show what it wrote, however late."""
    ledger = AckLedger(MEMORY)
    ledger.expect(3, {0}, 5.0)
    ledger.expire(5.0)
    if then == "a lower watermark":
        ledger.advance(0, 2)
    elif then == "another partition's":
        ledger.advance(1, 9)
    ledger.expire(5.0 + MEMORY * 10)
    assert ledger.hold([reply(3)]) == [failed(reply(3))]


def test_a_commit_failed_is_forgotten_after_failed_memory_once_its_partition_is_led_here_no_more():
    ledger = AckLedger(MEMORY)
    ledger.expect(3, {0}, 5.0)
    ledger.expire(5.0)
    ledger.deposed(0, 6.0)
    ledger.expire(5.0 + MEMORY + 0.01)
    assert ledger.hold([reply(3)]) == [reply(3)]


@pytest.mark.parametrize("commit", [0, 3])
def test_a_reply_for_a_commit_never_expected_leaves_at_once(commit):
    ledger = AckLedger(MEMORY)
    ledger.expect(1, {0}, FAR)
    ledger.expect(2, {1}, FAR)
    assert ledger.hold([reply(commit)]) == [reply(commit)]
    assert ledger.take() == []


def test_a_commit_that_wrote_no_partition_waits_for_nothing():
    ledger = AckLedger(MEMORY)
    ledger.expect(1, set(), FAR)
    assert len(ledger) == 0
    assert ledger.hold([reply(1)]) == [reply(1)]


def test_one_slow_partition_holds_back_no_other_partitions_commits():
    ledger = AckLedger(MEMORY)
    ledger.expect(1, {1}, FAR)  # the slow one
    ledger.expect(2, {0}, FAR)
    ledger.expect(3, {0, 1}, FAR)
    ledger.expect(4, {0}, FAR)
    ledger.hold([reply(1), reply(2), reply(3), reply(4)])
    ledger.advance(0, 4)
    assert ledger.take() == [reply(2), reply(4)]
    assert len(ledger) == 2
    ledger.advance(1, 3)
    assert ledger.take() == [reply(1), reply(3)]


def test_advance_releases_nothing_above_the_high_watermark():
    ledger = AckLedger(MEMORY)
    for commit in (1, 2, 3):
        ledger.expect(commit, {0}, FAR)
    ledger.hold([reply(1), reply(2), reply(3)])
    ledger.advance(0, 2)
    assert ledger.take() == [reply(1), reply(2)]
    ledger.advance(0, 2)
    assert ledger.take() == []
    assert len(ledger) == 1


# One step: ("expect", partitions) for the next commit, or ("advance", pid, hw).
ledger_steps = st.lists(
    st.one_of(
        st.tuples(st.just("expect"), st.frozensets(st.integers(0, 2), min_size=1)),
        st.tuples(st.just("advance"), st.integers(0, 2), st.integers(0, 12)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(ledger_steps)
def test_a_reply_leaves_exactly_when_every_partition_its_commit_wrote_has_advanced_past_it(ops):
    ledger = AckLedger(MEMORY)
    wrote: dict[int, frozenset[int]] = {}
    hw = {0: 0, 1: 0, 2: 0}
    out: list[Held] = []
    for op in ops:
        if op[0] == "expect":
            commit = len(wrote) + 1
            wrote[commit] = op[1]
            ledger.expect(commit, set(op[1]), FAR)
            out += ledger.hold([reply(commit)])
        else:
            _, pid, to = op
            to = min(to, len(wrote))  # a high watermark is a commit made already
            hw[pid] = max(hw[pid], to)
            ledger.advance(pid, to)
        out += ledger.take()
    held_everywhere = sorted(c for c, pids in wrote.items() if all(c <= hw[pid] for pid in pids))
    assert sorted(entry.commit for entry in out) == held_everywhere
    assert len(ledger) == len(wrote) - len(held_everywhere)
