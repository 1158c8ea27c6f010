"""LinKv: one call to lin-kv in flight per partition, a state taken only if its version is newer than every one
seen, and a compare-and-set of unknown outcome read about, and sent again while lin-kv still holds its `from`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from kafka_node.protocol import ErrorCode
from kafka_node.replication.events import KvAnswered, KvCall, KvExpired
from kafka_node.replication.linkv import Heard, LinKv
from kafka_node.wire.kv import KEY_DOES_NOT_EXIST
from kafka_node.wire.replica import PartitionState

PID = 3
RETRY = 0.25  # what the machine passes as `retry`: Timing().kv_retry
V1 = PartitionState("n0", 1, ["n0", "n1"], 1)
V2 = PartitionState("n1", 2, ["n1"], 2, ["n0"])  # V1 changed: n1 elected
V2_OTHER = PartitionState("n0", 1, ["n0"], 2, ["n1"])  # V1 changed otherwise, by another replica
V3 = PartitionState("n1", 2, ["n0", "n1"], 3)
UNAVAILABLE = ErrorCode.TEMPORARILY_UNAVAILABLE  # an error that says nothing of the state


def lin(known: PartitionState | None = None) -> tuple[LinKv, list[KvCall]]:
    """A partition's LinKv knowing `known` (if given), and the list its calls to lin-kv go to."""
    kv = LinKv(PID, 0.0)
    if known is not None:
        kv.learn(known)
    return kv, []


def answered(kv: LinKv, out: list[KvCall], state: PartitionState | None = None, error: int | None = None,
             now: float = 1.0, call: KvCall | None = None) -> Heard:
    """lin-kv answers `call` (the call in flight unless named): a read's state or error, or a compare-and-set's."""
    call = kv.call if call is None else call
    assert call is not None
    return kv.answered(KvAnswered(call, state, error, now), RETRY, out)


def applied(kv: LinKv, out: list[KvCall], now: float = 1.0) -> Heard:
    """The compare-and-set in flight applied (lin-kv's cas_ok: its `to` is the state now)."""
    assert kv.call is not None and kv.call.is_cas
    return answered(kv, out, kv.call.to, None, now)


def expired(kv: LinKv, out: list[KvCall], now: float = 1.0) -> bool:
    assert kv.call is not None
    return kv.expired(KvExpired(kv.call, now), out)


def test_only_one_call_to_lin_kv_is_in_flight_at_a_time():
    kv, out = lin(V1)
    kv.read(out)
    kv.read(out)
    kv.cas(V2, out)
    kv.read_if_due(10.0, 1.0, out)
    assert len(out) == 1 and not out[0].is_cas and kv.call is out[0]
    answered(kv, out, V1)
    kv.cas(V2, out)
    kv.cas(V3, out)
    kv.read(out)
    assert len(out) == 2 and out[1].to is V2 and kv.call is out[1]


@pytest.mark.parametrize(("learned", "from_"), [([], None), ([V1], V1), ([V1, V2], V2)],
                         ids=["nothing known: it creates the state", "from the state known", "from the newest known"])
def test_a_compare_and_set_changes_the_newest_state_known(learned, from_):
    kv, out = lin()
    for state in learned:
        kv.learn(state)
    kv.cas(V3, out)
    assert [(call.pid, call.from_, call.to) for call in out] == [(PID, from_, V3)]


@pytest.mark.parametrize(("known", "offered", "taken", "after"), [
    (None, V1, True, V1),
    (V1, V2, True, V2),
    (V1, V3, True, V3),
    (V2, V1, False, V2),
    (V2, V2_OTHER, False, V2),  # the same version: what was taken first stays
], ids=["the first state", "the next version", "a version further on", "an older version", "the same version"])
def test_a_state_is_taken_only_if_its_version_is_newer_than_every_one_seen(known, offered, taken, after):
    kv, _ = lin(known)
    assert kv.learn(offered) is taken
    assert kv.known is after


@dataclass
class ReadAnswer:
    known: PartitionState | None
    state: PartitionState | None
    error: int | None
    after: PartitionState | None  # the newest state known afterwards
    missing: bool  # lin-kv holds no state of the partition: nobody created it yet
    reread_at: float  # when the state may be read again


READ_ANSWERS = {
    "a newer state is taken": ReadAnswer(V1, V2, None, V2, False, 0.0),
    "an older state is not": ReadAnswer(V2, V1, None, V2, False, 0.0),
    "no state, none known: the partition is missing": ReadAnswer(None, None, KEY_DOES_NOT_EXIST, None, True, 0.0),
    "no state, one known: read again after retry": ReadAnswer(V1, None, KEY_DOES_NOT_EXIST, V1, False, 1.0 + RETRY),
    "another error: read again after retry": ReadAnswer(None, None, UNAVAILABLE, None, False, 1.0 + RETRY),
}


@pytest.mark.parametrize("case", READ_ANSWERS.values(), ids=READ_ANSWERS.keys())
def test_a_reads_answer_gives_the_newest_state_or_says_none_exists_or_calls_for_a_retry(case):
    kv, out = lin(case.known)
    kv.read(out)
    assert answered(kv, out, case.state, case.error, now=1.0) is Heard.STATE
    assert (kv.known, kv.missing, kv.reread_at) == (case.after, case.missing, case.reread_at)
    assert kv.idle and len(out) == 1


def test_a_partition_found_missing_is_missing_no_more_once_a_state_is_learned():
    kv, out = lin()
    kv.read(out)
    answered(kv, out, None, KEY_DOES_NOT_EXIST)
    assert kv.missing
    assert kv.learn(V1)
    assert not kv.missing


def test_an_answer_or_expiry_of_a_call_no_longer_in_flight_changes_nothing():
    kv, out = lin(V1)
    kv.read(out)
    first = out[0]
    assert expired(kv, out)
    assert len(out) == 2 and kv.call is out[1]  # read again
    assert answered(kv, out, V2, call=first) is Heard.NOTHING  # late: its call was given up on
    assert kv.known is V1 and kv.call is out[1]
    assert kv.expired(KvExpired(first, 2.0), out) is False
    assert len(out) == 2 and kv.call is out[1] and kv.expiries == 1


@pytest.mark.parametrize(("told", "heard", "known"), [(None, Heard.APPLIED, V2), (V3, Heard.STATE, V3)],
                         ids=["nothing newer known: it is the newest", "a newer state told meanwhile: that one stays"])
def test_a_compare_and_set_that_applied_makes_its_state_the_newest_known_unless_a_newer_is(told, heard, known):
    kv, out = lin(V1)
    kv.cas(V2, out)
    if told is not None:
        kv.learn(told)
    assert applied(kv, out) is heard
    assert kv.known is known and kv.idle


# --- a compare-and-set of unknown outcome ------------------------------------------------------------

def refuse(kv: LinKv, out: list[KvCall]) -> None:
    """lin-kv refuses the compare-and-set in flight: perhaps the answer to a copy of a request that applied."""
    assert answered(kv, out, None, ErrorCode.PRECONDITION_FAILED) is Heard.UNKNOWN


def expire(kv: LinKv, out: list[KvCall]) -> None:
    """The compare-and-set in flight goes unanswered past its deadline."""
    assert expired(kv, out)


@dataclass
class Unknown:
    known: PartitionState | None  # what the compare-and-set changes from
    to: PartitionState
    how: Callable[[LinKv, list[KvCall]], None]  # how its outcome becomes unknown
    still: tuple[PartitionState | None, int | None]  # a read (state, error) showing lin-kv still holds `known`


UNKNOWNS = {
    "refused": Unknown(V1, V2, refuse, (V1, None)),
    "unanswered": Unknown(V1, V2, expire, (V1, None)),
    "a creation refused": Unknown(None, V1, refuse, (None, KEY_DOES_NOT_EXIST)),
    "a creation unanswered": Unknown(None, V1, expire, (None, KEY_DOES_NOT_EXIST)),
}


@pytest.mark.parametrize("case", UNKNOWNS.values(), ids=UNKNOWNS.keys())
def test_a_compare_and_set_of_unknown_outcome_is_read_again_before_anything_else(case):
    kv, out = lin(case.known)
    kv.cas(case.to, out)
    cas = out[0]
    case.how(kv, out)
    assert kv.uncertain is cas and not kv.idle
    assert len(out) == 2 and not out[1].is_cas and kv.call is out[1]  # a read, at once
    # lin-kv still holds what it changes from: the same request again, so that it cannot apply later unseen
    assert answered(kv, out, *case.still) is Heard.NOTHING
    assert len(out) == 3 and out[2] is not cas and (out[2].from_, out[2].to) == (case.known, case.to)
    assert kv.uncertain is cas and kv.call is out[2]


@dataclass
class Settled:
    then: Callable[[LinKv, list[KvCall]], object]  # what happens once the outcome is unknown
    settled: bool  # whether it is no longer of unknown outcome
    known: PartitionState  # the newest state known afterwards


SETTLED = {
    "a read shows it applied": Settled(lambda kv, out: answered(kv, out, V2), True, V2),
    "a read shows another change of the same version won": Settled(lambda kv, out: answered(kv, out, V2_OTHER), True,
                                                                   V2_OTHER),
    "a read shows lin-kv further on": Settled(lambda kv, out: answered(kv, out, V3), True, V3),
    "another node tells of a state past it": Settled(lambda kv, out: kv.learn(V2), True, V2),
    "a read that failed says nothing": Settled(lambda kv, out: answered(kv, out, None, UNAVAILABLE), False, V1),
}


@pytest.mark.parametrize("case", SETTLED.values(), ids=SETTLED.keys())
def test_a_compare_and_set_of_unknown_outcome_is_settled_only_once_lin_kv_is_seen_past_its_from(case):
    kv, out = lin(V1)
    kv.cas(V2, out)
    refuse(kv, out)
    case.then(kv, out)
    assert kv.known is case.known
    assert (kv.uncertain is None) is case.settled
    if not case.settled:
        assert kv.call is None and not kv.idle  # no call in flight, yet no other may start: read again when due
        kv.read_if_due(1.0 + RETRY, 2.0, out)
        assert not out[-1].is_cas and kv.call is out[-1]


def test_a_compare_and_set_unanswered_after_lin_kv_was_seen_past_it_is_of_known_outcome():
    kv, out = lin(V1)
    kv.cas(V2, out)
    kv.learn(V3)  # another node's news while it was in flight: V1 is gone, it never applies now
    expire(kv, out)
    assert kv.uncertain is None
    answered(kv, out, V3)
    assert kv.idle


def test_calls_unanswered_in_a_row_are_counted_until_one_is_answered():
    kv, out = lin(V1)
    kv.read(out)
    expired(kv, out)
    expired(kv, out)
    assert kv.expiries == 2
    answered(kv, out, V1)
    assert kv.expiries == 0


def test_the_state_is_read_again_only_when_due_and_then_not_before_the_next_period():
    kv, out = lin(V1)
    kv.read_if_due(0.0, 2.0, out)  # due from the start
    assert len(out) == 1
    answered(kv, out, V1, now=0.1)
    kv.read_if_due(1.9, 2.0, out)
    assert len(out) == 1
    kv.read_if_due(2.0, 2.0, out)
    assert len(out) == 2 and kv.call is out[1]


def test_an_optional_read_gives_way_to_any_other_call_and_unanswered_is_not_lin_kv_out_of_reach():
    kv, out = lin(V1)
    kv.read_if_due(0.0, 2.0, out, optional=True)
    assert len(out) == 1 and out[0].optional and kv.idle and not kv.calling
    kv.read(out, optional=True)
    assert len(out) == 1, "an optional read does not replace another"
    expired(kv, out)
    assert (len(out), kv.call, kv.expiries) == (1, None, 0), "no read again at once, and not counted"
    kv.read_if_due(2.0, 2.0, out, optional=True)
    kv.cas(V2, out)
    assert len(out) == 3 and kv.call is out[2] and kv.calling
    assert answered(kv, out, V1, call=out[1]) is Heard.NOTHING  # the read it replaced, answered late
    assert applied(kv, out) is Heard.APPLIED and kv.known is V2
