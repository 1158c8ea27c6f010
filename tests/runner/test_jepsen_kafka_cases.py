"""Jepsen's own tests of its kafka checker (jepsen/test/jepsen/tests/kafka_test.clj in
jepsen-io/jepsen), ported: each history is written as Jepsen writes it, one EDN operation per
line, read through our history.edn reader, and judged by our checker, which must report the
anomaly types, counts and details Jepsen's tests assert.

Jepsen's `(o index process type f value)` sets :time to the index; here the histories leave
:index out, so an op's index is its position. Keys :x and :y are "x" and "y", values :a, :b...
are "a", "b"... A send of several values to one key in one operation is written as one single
send per value, in the same order and process, where that keeps what the test shows.

Not ported, because they cannot be written as single-operation send/poll/assign histories, or
test no history at all:
- op->max-offsets-test, log->last-index->values-test, log->value->first-index-test: helpers
  over a multi-micro-op transaction or over Jepsen's internal log vectors, not histories.
- version-orders-test's first part: an indeterminate transaction of three sends is proven to
  have committed by a read of one of them, so all three enter the version order; split into
  single sends, only the one read would.
- inconsistent-offsets-test's second part and lost-write-test "atomic" second part: the same
  proof across two keys of one transaction.
- int-poll-skip-test's poll-1-4b, int-nonmonotonic-poll-test's second micro-poll of poll-33b:
  two polls in one operation (the first micro-poll of poll-33b is kept: it places :b).
- int-send-skip-test, int-nonmonotonic-send-test: several sends in one transaction (and
  int-send-skip is allowed by Jepsen anyway).
- g0-test, g1c-pure-wr-test, g1c-ww-wr-test, precommitted-read-test: transactions mixing
  sends and polls, or ww dependencies Maelstrom does not ask for.
- realtime-lag-test: realtime lag is a plot, not an anomaly, and is not computed here.
- gen-poll-unseen-test: simulates Jepsen's generator, not the checker (our generator's
  unseen-key assigns are tested in test_checker.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kafka_node.maelstrom.checker import check
from kafka_node.maelstrom.edn_history import read_edn


def o(process: int, type: str, f: str, value: str, extra: str = "") -> str:
    """One operation, as Jepsen's `o` builds it, as a line of history.edn."""
    return f"{{:process {process}, :type :{type}, :f :{f}, :value {value}{extra}}}"


def judge(tmp_path: Path, *lines: str):
    path = tmp_path / "history.edn"
    path.write_text("\n".join(lines) + "\n")
    return check(read_edn(path))


def jepsens_fields(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cases without the ops we add to them (Jepsen cites none for these anomalies)."""
    return [{name: value for name, value in case.items() if name != "ops"} for case in cases]


def indices(case: dict[str, Any], field: str = "ops") -> list[int]:
    refs = case[field] if isinstance(case[field], list) else [case[field]]
    return [ref["index"] for ref in refs]


# --- version-orders-test, inconsistent-offsets-test -------------------------------------------

def test_version_orders_a_real_world_example(tmp_path):
    verdict = judge(tmp_path,
                    o(379, "invoke", "send", '[[:send "11" 641]]'),
                    o(379, "ok", "send", '[[:send "11" [537 641]]]'),
                    o(363, "invoke", "send", '[[:send "11" 645]]'),
                    o(363, "ok", "send", '[[:send "11" [537 645]]]'))
    assert jepsens_fields(verdict.anomalies["inconsistent-offsets"]) == [
        {"key": "11", "index": 0, "offset": 537, "values": [641, 645]}]
    assert indices(verdict.anomalies["inconsistent-offsets"][0]) == [1, 3]


def test_inconsistent_offsets_an_indeterminate_send_is_assumed_not_to_have_committed(tmp_path):
    verdict = judge(tmp_path,
                    o(0, "invoke", "send", '[[:send "x" 1]]'),
                    o(0, "info", "send", '[[:send "x" [0 1]]]'),
                    o(1, "invoke", "send", '[[:send "x" 2]]'),
                    o(1, "ok", "send", '[[:send "x" [0 2]]]'))
    assert "inconsistent-offsets" not in verdict.anomalies


# --- g1a-test ---------------------------------------------------------------------------------

def test_g1a_a_failed_send_read_by_an_acknowledged_poll(tmp_path):
    verdict = judge(tmp_path,
                    o(0, "invoke", "send", '[[:send "x" 2]]'),
                    o(0, "fail", "send", '[[:send "x" 2]]'),
                    o(0, "invoke", "send", '[[:send "y" 3]]'),
                    o(0, "fail", "send", '[[:send "y" 3]]'),
                    o(1, "invoke", "poll", "[[:poll]]"),
                    o(1, "ok", "poll", '[[:poll {"x" [[0 2]]}]]'))
    [case] = verdict.anomalies["G1a"]
    assert (case["key"], case["value"]) == ("x", 2)
    assert case["writer"]["index"] == 1 and case["reader"]["index"] == 5


# --- lost-write-test --------------------------------------------------------------------------

def test_lost_write_consistent(tmp_path):
    # a at 0, b at 1, d at 3; a poll reads c at 2, so a and b should have been read.
    verdict = judge(tmp_path,
                    o(0, "invoke", "send", '[[:send "x" "a"]]'),
                    o(0, "ok", "send", '[[:send "x" [0 "a"]]]'),
                    o(0, "invoke", "send", '[[:send "x" "b"]]'),
                    o(0, "ok", "send", '[[:send "x" [1 "b"]]]'),
                    o(0, "invoke", "send", '[[:send "x" "d"]]'),
                    o(0, "ok", "send", '[[:send "x" [3 "d"]]]'),
                    o(1, "invoke", "send", '[[:send "x" "c"]]'),
                    o(1, "info", "send", '[[:send "x" "c"]]'),
                    o(0, "invoke", "poll", "[[:poll]]"),
                    o(0, "ok", "poll", '[[:poll {"x" [[2 "c"]]}]]'))
    cases = verdict.anomalies["lost-write"]
    assert [(c["value"], c["index"], c["max-read-index"]) for c in cases] == [("a", 0, 2), ("b", 1, 2)]
    assert [c["writer"]["index"] for c in cases] == [1, 3]
    assert {c["max-read"]["index"] for c in cases} == {9}


def test_lost_write_inconsistent(tmp_path):
    # a is sent at 0, then b lands at 0 too and c at 2; reading b and c means a was lost.
    verdict = judge(tmp_path,
                    o(0, "invoke", "send", '[[:send "x" "a"]]'),
                    o(0, "ok", "send", '[[:send "x" [0 "a"]]]'),
                    o(0, "invoke", "send", '[[:send "x" "b"]]'),
                    o(0, "ok", "send", '[[:send "x" [0 "b"]]]'),
                    o(0, "invoke", "send", '[[:send "x" "c"]]'),
                    o(0, "ok", "send", '[[:send "x" [2 "c"]]]'),
                    o(0, "invoke", "poll", "[[:poll]]"),
                    o(0, "ok", "poll", '[[:poll {"x" [[0 "b"] [2 "c"]]}]]'))
    [case] = verdict.anomalies["lost-write"]
    assert (case["value"], case["index"], case["max-read-index"]) == ("a", 0, 1)  # there is no offset 1
    assert (case["writer"]["index"], case["max-read"]["index"]) == (1, 7)


def test_lost_write_atomic_without_proof_of_commit(tmp_path):
    # An indeterminate send of b at 0, never read: it may not have happened, so c at 1 being
    # read does not make b lost.
    verdict = judge(tmp_path,
                    o(0, "invoke", "send", '[[:send "y" "b"]]'),
                    o(0, "info", "send", '[[:send "y" [0 "b"]]]'),
                    o(1, "invoke", "send", '[[:send "y" "c"]]'),
                    o(1, "info", "send", '[[:send "y" "c"]]'),
                    o(3, "invoke", "poll", "[[:poll]]"),
                    o(3, "ok", "poll", '[[:poll {"y" [[1 "c"]]}]]'))
    assert "lost-write" not in verdict.anomalies


# --- poll-skip-test ---------------------------------------------------------------------------

POLL_1_2 = [o(0, "invoke", "poll", "[[:poll]]"), o(0, "ok", "poll", '[[:poll {"x" [[1 "a"] [2 "b"]]}]]')]
POLL_3 = [o(1, "invoke", "poll", "[[:poll]]"), o(1, "ok", "poll", '[[:poll {"x" [[3 "c"]]}]]')]
POLL_4 = [o(0, "invoke", "poll", "[[:poll]]"), o(0, "ok", "poll", '[[:poll {"x" [[4 "d"]]}]]')]
WRITE_6 = [o(2, "invoke", "send", '[[:send "x" "f"]]'), o(2, "ok", "send", '[[:send "x" [6 "f"]]]')]
POLL_7 = [o(0, "invoke", "poll", "[[:poll]]"), o(0, "ok", "poll", '[[:poll {"x" [[7 "g"]]}]]')]
WRITE_ALL = [line for value in "abcdg" for line in (
    o(3, "invoke", "send", f'[[:send "x" "{value}"]]'), o(3, "info", "send", f'[[:send "x" "{value}"]]'))]


def _skips(verdict) -> list[tuple[int, list[Any]]]:
    return [(c["delta"], c["skipped"]) for c in verdict.anomalies.get("poll-skip", [])]


def test_poll_skip(tmp_path):
    # Process 0 reads offsets 1, 2, then 4, then 7; 3 and 6 are known to exist.
    verdict = judge(tmp_path, *POLL_1_2, *POLL_3, *POLL_4, *WRITE_6, *POLL_7, *WRITE_ALL)
    assert _skips(verdict) == [(2, ["c"]), (2, ["f"])]
    assert [indices(c) for c in verdict.anomalies["poll-skip"]] == [[1, 5], [5, 9]]


def test_poll_skip_forgotten_when_reassigned_away_from_the_key(tmp_path):
    # A subscribe to y before poll-4, an indeterminate assign of y before poll-7.
    verdict = judge(tmp_path, *POLL_1_2, *POLL_3,
                    o(0, "invoke", "subscribe", '["y"]'), o(0, "ok", "subscribe", '["y"]'), *POLL_4,
                    o(0, "invoke", "assign", '["y"]'), o(0, "info", "assign", '["y"]'),
                    *WRITE_6, *POLL_7, *WRITE_ALL)
    assert "poll-skip" not in verdict.anomalies


def test_poll_skip_kept_when_reassigned_the_same_key(tmp_path):
    verdict = judge(tmp_path, *POLL_1_2, *POLL_3,
                    o(0, "invoke", "subscribe", '["x" "y"]'), o(0, "ok", "subscribe", '["x" "y"]'), *POLL_4,
                    o(0, "invoke", "assign", '["x" "y"]'), o(0, "ok", "assign", '["x" "y"]'),
                    *WRITE_6, *POLL_7, *WRITE_ALL)
    assert _skips(verdict) == [(2, ["c"]), (2, ["f"])]


def _sends(count: int) -> list[str]:
    return [line for v in range(count) for line in (
        o(0, "invoke", "send", f'[[:send "x" {v}]]'), o(0, "ok", "send", f'[[:send "x" [{v} {v}]]]'))]


def test_poll_skip_txn_abort_good(tmp_path):
    # Aborted polls (fail, info) pick up where the last ok one left off; none is wrong.
    verdict = judge(tmp_path, *_sends(3),
                    o(1, "invoke", "poll", "[[:poll]]"), o(1, "ok", "poll", '[[:poll {"x" [[0 0]]}]]'),
                    o(1, "invoke", "poll", "[[:poll]]"), o(1, "fail", "poll", '[[:poll {"x" [[1 1] [2 2]]}]]'),
                    o(1, "invoke", "poll", "[[:poll]]"), o(1, "info", "poll", '[[:poll {"x" [[1 1] [2 2]]}]]'),
                    o(1, "invoke", "poll", "[[:poll]]"), o(1, "ok", "poll", '[[:poll {"x" [[1 1] [2 2]]}]]'))
    assert verdict.anomalies == {}


def test_poll_skip_abort_does_not_roll_back(tmp_path):
    verdict = judge(tmp_path, *_sends(6),
                    o(1, "invoke", "poll", "[[:poll]]"), o(1, "ok", "poll", '[[:poll {"x" [[0 0]]}]]'),
                    o(1, "invoke", "poll", "[[:poll]]"), o(1, "fail", "poll", '[[:poll {"x" [[1 1] [2 2]]}]]'),
                    o(1, "invoke", "poll", "[[:poll]]"), o(1, "fail", "poll", '[[:poll {"x" [[3 3] [4 4]]}]]'),
                    o(1, "invoke", "poll", "[[:poll]]"), o(1, "ok", "poll", '[[:poll {"x" [[5 5]]}]]'))
    assert _skips(verdict) == [(3, [1, 2]), (5, [1, 2, 3, 4])]
    assert [indices(c) for c in verdict.anomalies["poll-skip"]] == [[13, 17], [13, 19]]


def test_poll_skip_an_indeterminate_poll_can_skip(tmp_path):
    verdict = judge(tmp_path, *_sends(6),
                    o(1, "invoke", "poll", "[[:poll]]"), o(1, "ok", "poll", '[[:poll {"x" [[0 0]]}]]'),
                    o(1, "invoke", "poll", "[[:poll]]"), o(1, "fail", "poll", '[[:poll {"x" [[1 1] [2 2]]}]]'),
                    o(1, "invoke", "poll", "[[:poll]]"), o(1, "info", "poll", '[[:poll {"x" [[3 3] [4 4]]}]]'))
    assert _skips(verdict) == [(3, [1, 2])]
    assert indices(verdict.anomalies["poll-skip"][0]) == [13, 17]


# --- nonmonotonic-poll-test -------------------------------------------------------------------

SEND_ABCD = [line for value in "abcd" for line in (
    o(0, "invoke", "send", f'[[:send "x" "{value}"]]'), o(0, "ok", "send", f'[[:send "x" "{value}"]]'))]
POLL_123 = [o(0, "invoke", "poll", "[[:poll]]"), o(0, "ok", "poll", '[[:poll {"x" [[1 "a"] [2 "b"] [3 "c"]]}]]')]
POLL_234 = [o(0, "invoke", "poll", "[[:poll]]"), o(0, "ok", "poll", '[[:poll {"x" [[2 "b"] [3 "c"] [4 "d"]]}]]')]


@pytest.mark.parametrize(("between", "flagged"), [
    ([], True),
    ([o(0, "invoke", "subscribe", '["y"]'), o(0, "ok", "subscribe", '["y"]')], False),
    ([o(0, "invoke", "assign", '["y"]'), o(0, "ok", "assign", '["y"]')], False),
    ([o(0, "invoke", "subscribe", '["x" "y"]'), o(0, "ok", "subscribe", '["x" "y"]')], True),
    ([o(0, "invoke", "assign", '["x" "y"]'), o(0, "ok", "assign", '["x" "y"]')], True),
], ids=["together", "subscribe y", "assign y", "subscribe x y", "assign x y"])
def test_nonmonotonic_poll(tmp_path, between, flagged):
    # Process 0 polls 1 2 3, then goes back and reads 2 again.
    verdict = judge(tmp_path, *SEND_ABCD, *POLL_123, *between, *POLL_234)
    cases = verdict.anomalies.get("nonmonotonic-poll", [])
    if not flagged:
        assert cases == []
        return
    [case] = cases
    assert (case["key"], case["values"], case["delta"]) == ("x", ["c", "b"], -1)
    assert indices(case) == [9, 11 + len(between)]


# --- nonmonotonic-send-test -------------------------------------------------------------------

SEND_34 = [o(0, "invoke", "send", '[[:send "x" "c"]]'), o(0, "ok", "send", '[[:send "x" [3 "c"]]]'),
           o(0, "invoke", "send", '[[:send "x" "d"]]'), o(0, "ok", "send", '[[:send "x" [4 "d"]]]')]
SEND_12 = [o(0, "invoke", "send", '[[:send "x" "a"]]'), o(0, "ok", "send", '[[:send "x" [1 "a"]]]'),
           o(0, "invoke", "send", '[[:send "x" "b"]]'), o(0, "ok", "send", '[[:send "x" [2 "b"]]]')]


@pytest.mark.parametrize(("between", "flagged"), [
    ([], True),
    ([o(0, "invoke", "subscribe", '["y"]'), o(0, "ok", "subscribe", '["y"]')], False),
    ([o(0, "invoke", "assign", '["y"]'), o(0, "info", "assign", '["y"]')], False),
    ([o(0, "invoke", "subscribe", '["x" "y"]'), o(0, "ok", "subscribe", '["x" "y"]')], True),
    ([o(0, "invoke", "assign", '["x" "y"]'), o(0, "ok", "assign", '["x" "y"]')], True),
], ids=["together", "subscribe y", "indeterminate assign y", "subscribe x y", "assign x y"])
def test_nonmonotonic_send(tmp_path, between, flagged):
    # Process 0 sends offsets 3, 4, then 1, 2.
    verdict = judge(tmp_path, *SEND_34, *between, *SEND_12)
    cases = verdict.anomalies.get("nonmonotonic-send", [])
    if not flagged:
        assert cases == []
        return
    [case] = cases
    assert (case["key"], case["values"], case["delta"]) == ("x", ["d", "a"], -3)
    assert indices(case) == [3, 5 + len(between)]


# --- int-poll-skip-test, int-nonmonotonic-poll-test -------------------------------------------

def test_int_poll_skip(tmp_path):
    # One poll reads offsets 1 and 4; another reads 2, which shows 1 -> 4 jumped over it.
    verdict = judge(tmp_path,
                    *[line for value in "abd" for line in (o(1, "invoke", "send", f'[[:send "x" "{value}"]]'),
                                                           o(1, "info", "send", f'[[:send "x" "{value}"]]'))],
                    o(0, "invoke", "poll", "[[:poll]]"), o(0, "ok", "poll", '[[:poll {"x" [[1 "a"] [4 "d"]]}]]'),
                    o(0, "invoke", "poll", "[[:poll]]"), o(0, "ok", "poll", '[[:poll {"x" [[2 "b"]]}]]'))
    [case] = verdict.anomalies["int-poll-skip"]
    assert (case["key"], case["values"], case["skipped"], case["delta"]) == ("x", ["a", "d"], ["b"], 2)
    assert indices(case, "op") == [7]


def test_int_nonmonotonic_poll(tmp_path):
    verdict = judge(tmp_path,
                    *[line for value in "abc" for line in (o(0, "invoke", "send", f'[[:send "x" "{value}"]]'),
                                                           o(0, "info", "send", f'[[:send "x" "{value}"]]'))],
                    o(0, "invoke", "poll", "[[:poll]]"), o(0, "ok", "poll", '[[:poll {"x" [[3 "c"] [1 "a"]]}]]'),
                    # This read of b places an index between a and c: the delta is -2.
                    o(0, "invoke", "poll", "[[:poll]]"), o(0, "ok", "poll", '[[:poll {"x" [[2 "b"] [3 "c"]]}]]'))
    [case] = verdict.anomalies["int-nonmonotonic-poll"]
    assert (case["key"], case["values"], case["delta"]) == ("x", ["c", "a"], -2)
    assert indices(case, "op") == [7]


# --- duplicate-test ---------------------------------------------------------------------------

def test_duplicate_basic(tmp_path):
    # A send puts a at 1, and a poll reads a at 3: it was at both.
    verdict = judge(tmp_path,
                    o(0, "invoke", "send", '[[:send "x" "a"]]'), o(0, "ok", "send", '[[:send "x" [1 "a"]]]'),
                    o(1, "invoke", "send", '[[:send "x" "b"]]'), o(1, "info", "send", '[[:send "x" "b"]]'),
                    o(2, "invoke", "poll", "[[:poll]]"), o(2, "ok", "poll", '[[:poll {"x" [[2 "b"] [3 "a"]]}]]'))
    assert jepsens_fields(verdict.anomalies["duplicate"]) == [{"key": "x", "value": "a", "count": 2, "offsets": [1, 3]}]
    assert indices(verdict.anomalies["duplicate"][0]) == [1, 5]


def test_duplicate_hash_insensitive(tmp_path):
    # Ten values, each sent at offset 0 and polled at offset 1: all are duplicates, and both
    # offsets hold all ten.
    lines = [line for value in range(10) for line in (
        o(0, "invoke", "send", f'[[:send "x" {value}]]'), o(0, "ok", "send", f'[[:send "x" [0 {value}]]]'),
        o(1, "invoke", "poll", "[[:poll]]"), o(1, "ok", "poll", f'[[:poll {{"x" [[1 {value}]]}}]]'))]
    verdict = judge(tmp_path, *lines)
    assert sorted(c["value"] for c in verdict.anomalies["duplicate"]) == list(range(10))
    assert [(c["offset"], c["index"], c["values"]) for c in verdict.anomalies["inconsistent-offsets"]] == [
        (0, 0, list(range(10))), (1, 1, list(range(10)))]


def test_duplicate_aborted_txns(tmp_path):
    # A failed poll still reports what it saw: 0 at offsets 1 and 11 is a duplicate; 1's send
    # failed, so its offset 2 never entered the log and 12 alone is no duplicate.
    verdict = judge(tmp_path,
                    o(0, "invoke", "send", '[[:send "x" 0]]'), o(0, "ok", "send", '[[:send "x" [1 0]]]'),
                    o(0, "invoke", "send", '[[:send "x" 1]]'), o(0, "fail", "send", '[[:send "x" [2 1]]]'),
                    o(1, "invoke", "poll", "[[:poll]]"), o(1, "fail", "poll", '[[:poll {"x" [[11 0] [12 1]]}]]'))
    assert jepsens_fields(verdict.anomalies["duplicate"]) == [{"key": "x", "value": 0, "count": 2, "offsets": [1, 11]}]


# --- empty-history-test, unseen-test ----------------------------------------------------------

def test_empty_history_is_invalid(tmp_path):
    verdict = judge(tmp_path, o(0, "invoke", "assign", '["x"]'), o(0, "ok", "assign", '["x"]'))
    assert verdict.maelstrom_valid is False
    assert verdict.maelstrom_types == ["empty-transaction-graph"]


def test_unseen_caught_up_by_the_end(tmp_path):
    verdict = judge(tmp_path,
                    o(0, "invoke", "poll", "[[:poll]]"), o(0, "ok", "poll", "[[:poll {}]]"),
                    o(0, "invoke", "send", '[[:send "x" "a"]]'), o(0, "ok", "send", '[[:send "x" [0 "a"]]]'),
                    o(0, "invoke", "send", '[[:send "x" "b"]]'), o(0, "ok", "send", '[[:send "x" [1 "b"]]]'),
                    o(0, "invoke", "poll", "[[:poll]]"), o(0, "ok", "poll", '[[:poll {"x" [[0 "a"]]}]]'),
                    o(0, "invoke", "poll", "[[:poll]]"), o(0, "ok", "poll", '[[:poll {"x" [[1 "b"]]}]]'))
    assert verdict.anomalies == {}
