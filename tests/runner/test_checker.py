"""The kafka checker against hand-built histories: each anomaly is flagged with its type, key
and verdict (Maelstrom's or our stricter one); Maelstrom's quirks are kept; histories it
cannot analyse are "unknown"; legitimate histories pass both verdicts."""

from __future__ import annotations

import random

import pytest

from kafka_node.maelstrom import report
from kafka_node.maelstrom.analysis import clojure_hash
from kafka_node.maelstrom.checker import ANOMALY_TYPES, MAELSTROM_TYPES, UNKNOWN, check, with_stricter
from kafka_node.maelstrom.history import Op, key_order, read_jsonl, write_jsonl
from kafka_node.maelstrom.workload import Workload

from support.histories import BASELINE, FLAGGED, assign, failed_commit, history, poll, send, sends, with_baseline


@pytest.mark.parametrize(("ops", "anomaly", "key", "expected"), FLAGGED.values(), ids=FLAGGED.keys())
def test_anomaly_is_flagged_with_its_key_details_and_verdict(ops, anomaly, key, expected):
    verdict = check(ops)
    assert not verdict.valid
    assert anomaly in verdict.anomalies, verdict.anomalies
    case = verdict.anomalies[anomaly][0]
    assert case.get("key") == key
    assert {name: case[name] for name in expected} == expected
    if anomaly in MAELSTROM_TYPES:
        assert verdict.maelstrom_valid is False and anomaly in verdict.maelstrom_types
    else:
        assert verdict.maelstrom_valid is True and verdict.stricter_types == [anomaly]


@pytest.mark.parametrize(("ops", "anomaly", "key", "expected"), FLAGGED.values(), ids=FLAGGED.keys())
def test_summary_describes_each_anomaly(ops, anomaly, key, expected):
    case = check(ops).anomalies[anomaly][0]
    sentence = report.describe(anomaly, case)
    assert (repr(key) if key else case.get("f", "operations")) in sentence
    assert "{" not in sentence  # a sentence, not a dump of the case


def test_every_anomaly_type_has_a_flagged_history():
    flagged = {anomaly for _, anomaly, _, _ in FLAGGED.values()}
    from_the_runner = {"committed-offset-regression", "hostile-accepted", "unknown-destination", "aborted"}
    asked_for = {"availability"}  # with --availability: tests/runner/test_check_command.py
    assert flagged | from_the_runner | asked_for == set(ANOMALY_TYPES)


def test_lost_write_cites_the_writer_and_a_reader_of_the_highest_position():
    ops, *_ = FLAGGED["lost-write"]
    case = check(ops).anomalies["lost-write"][0]
    assert (case["writer"]["f"], case["writer"]["value"]["msg"]) == ("send", 1)
    assert case["max-read"]["f"] == "poll" and case["max-read"]["value"]["msgs"] == [[2, 3]]


def test_poll_skip_cites_both_polls_narrowed_to_the_key():
    ops, *_ = FLAGGED["poll-skip"]
    before, after = check(ops).anomalies["poll-skip"][0]["ops"]
    assert before["value"]["msgs"] == [[0, 1]] and after["value"]["msgs"] == [[2, 3]]
    assert before["process"] == after["process"] == 1


def test_a_failed_poll_neither_counts_as_a_read_nor_moves_the_memory():
    ops, *_ = FLAGGED["poll-skip after a poll whose commit failed"]
    # Value 2 was read only by the failed poll: for Jepsen nobody read it.
    assert {"poll-skip", "lost-write", "unseen"} == set(check(ops).maelstrom_types)
    # The final polls (a fresh client from offset 0) read it; the skip remains.
    final = with_baseline(*failed_commit(), assign(5, ["1"]), poll(5, {"1": [[0, 1], [1, 2], [2, 3]]}))
    verdict = check(final)
    assert verdict.maelstrom_types == ["poll-skip"]
    assert verdict.stricter_valid  # the node answered exactly what was asked


def test_the_offset_of_a_failed_send_never_enters_the_version_order():
    # Jepsen takes a send's offset only from a send that must have committed; a failed one
    # read elsewhere is an aborted read, not a duplicate.
    ops = with_baseline(send(0, "1", 1, 3, type="fail"), assign(1, ["1"], {}), poll(1, {"1": [[0, 1]]}), poll(1, {}))
    assert check(ops).maelstrom_types == ["G1a"]


def test_a_duplicated_value_is_placed_at_its_last_position():
    # Jepsen's by-value map keeps a value's last index: "a" counts as being at offset 2, so
    # reading it right after "b" at 1 is the next position, not a step back; but sending "b"
    # after "a", or reading "a" before "b" in one poll, goes backwards.
    ops = with_baseline(send(0, "1", "a", 0), send(0, "1", "b", 1), assign(1, ["1"], {}),
                        poll(1, {"1": [[0, "a"], [1, "b"]]}), poll(1, {"1": [[2, "a"]]}))
    assert check(ops).maelstrom_types == ["duplicate", "nonmonotonic-send", "int-nonmonotonic-poll"]


@pytest.mark.parametrize(("read_after", "backwards"), [(2, False), (1, True)])
def test_an_offset_holding_two_values_is_placed_by_clojures_set_order(read_after, backwards):
    # Offset 0 holds 2 (sent first) and 1; (first #{1 2}) is 1 in Clojure (hash order), so 1
    # has offset 0's place in the version order and 2 has none.
    ops = with_baseline(send(0, "1", 2, 0), send(1, "1", 1, 0), send(1, "1", 3, 1), assign(2, ["1"], {}),
                        poll(2, {"1": [[1, 3]]}, asked={"1": 1}), poll(2, {"1": [[0, read_after]]}, asked={"1": 0}))
    verdict = check(ops)
    assert "inconsistent-offsets" in verdict.anomalies
    assert ("nonmonotonic-poll" in verdict.anomalies) is backwards


def test_clojure_hashes_of_longs_and_strings():
    signed = [h - (1 << 32) if h >= 1 << 31 else h for h in map(clojure_hash, [1, -1, "a", 0])]
    assert signed == [1392991556, 1651860712, 1455541201, 0]
    assert clojure_hash(1.5) is None and clojure_hash(True) is None


def test_a_value_seen_only_by_a_failed_poll_from_an_indeterminate_send_is_not_lost():
    # The failed poll puts it in the version order, but nothing proves its send happened.
    ops = with_baseline(send(0, "1", 1, None, type="info"), send(0, "1", 2, 1), assign(1, ["1"], {}),
                        [Op(process=1, type="invoke", f="poll", value={}),
                         Op(process=1, type="fail", f="poll", value={"msgs": {"1": [[0, 1]]}})],
                        poll(1, {"1": [[1, 2]]}), poll(1, {}))
    assert check(ops).valid


def test_a_value_read_only_by_a_failed_poll_is_no_aborted_read():
    ops = with_baseline(send(0, "1", 1, None, type="fail"), assign(1, ["1"], {}),
                        poll(1, {"1": [[0, 1]]}, type="fail"))
    assert "G1a" not in check(ops).anomalies


def test_the_first_poll_after_an_assign_is_judged_only_by_the_stricter_checks():
    ops, *_ = FLAGGED["asked-offset-skip"]
    verdict = check(ops)
    assert "poll-skip" not in verdict.anomalies and verdict.maelstrom_valid is True


def test_a_key_that_was_not_asked_is_not_judged_as_a_skip():
    ops = with_baseline(sends("1", 3), assign(1, ["2"], {}), poll(1, {"1": [[2, 3]]}))
    anomalies = check(ops).anomalies
    assert "unasked-key" in anomalies and "poll-skip" not in anomalies and "asked-offset-skip" not in anomalies


# --- what Maelstrom's analysis cannot judge: "unknown" ---------------------------------------

def test_a_message_nobody_sent_makes_maelstroms_verdict_unknown():
    ops = with_baseline(send(0, "1", 1, 0), assign(1, ["1"], {}), poll(1, {"1": [[0, "1"]]}))
    verdict = check(ops)
    assert verdict.maelstrom_valid == UNKNOWN and not verdict.valid
    [error] = verdict.analysis_errors
    assert (error["error"], error["key"], error["value"]) == ("no-writer-of-value", "1", "1")
    assert "no send of it was ever attempted" in report.describe_error(error)


def test_a_key_polled_only_as_empty_lists_makes_maelstroms_verdict_unknown():
    # Jepsen's lost-write analysis takes (nth last-index->values -1) for such a key.
    ops = with_baseline(send(0, "1", 1, 0), assign(1, ["1"], {}), poll(1, {"1": []}), poll(1, {"1": [[0, 1]]}),
                        assign(1, ["1", "2"], {}), poll(1, {"2": []}))
    verdict = check(ops)
    assert verdict.maelstrom_valid == UNKNOWN
    assert [(e["error"], e["key"]) for e in verdict.analysis_errors] == [("no-read-in-version-order", "2")]


def test_a_history_not_ending_in_final_polls_makes_maelstroms_verdict_unknown():
    # Jepsen's unseen plot takes the time of the first of the final polls: (:time nil).
    ends_in_a_send = with_baseline(send(0, "1", 1, 0), assign(1, ["1"], {}), poll(1, {"1": [[0, 1]]}),
                                   send(0, "2", 1, 0))
    verdict = check(ends_in_a_send)
    assert verdict.maelstrom_valid == UNKNOWN
    assert [e["error"] for e in verdict.analysis_errors] == ["no-final-polls"]
    assert "not with final polls" in report.describe_error(verdict.analysis_errors[0])


def test_an_offset_beyond_a_java_vector_makes_maelstroms_verdict_unknown():
    big = 1 << 31
    ops = with_baseline(send(0, "1", 1, big), assign(1, ["1"], {}), poll(1, {"1": [[big, 1]]}))
    verdict = check(ops)
    assert verdict.maelstrom_valid == UNKNOWN
    assert [(e["error"], e["offset"]) for e in verdict.analysis_errors] == [("offset-too-large", big)]


def test_a_history_without_client_operations_is_valid_for_maelstrom():
    # Jepsen's cycle search runs only when the history's first op has a type.
    verdict = check([])
    assert verdict.valid and verdict.anomalies == {}


def test_an_unknown_analysis_is_still_invalid_when_the_stats_rule_fails():
    # Jepsen composes checkers by priority: false beats unknown.
    ops = history(send(0, "1", 1, 0), poll(0, {"1": [[0, "x"]]}, asked={"1": 0}),
                  assign(0, ["1"], {}, type="fail"))
    verdict = check(ops)
    assert verdict.analysis_errors and verdict.maelstrom_valid is False


# --- Jepsen's unseen quirk -------------------------------------------------------------------

def test_a_key_first_read_by_the_last_acknowledged_op_and_never_sent_ok_is_unseen():
    # Jepsen's fold leaves such a key holding the values read; one more op clears it.
    last = with_baseline(send(0, "1", 1, None, type="info"), assign(1, ["1"], {}), poll(1, {"1": [[0, 1]]}))
    assert check(last).maelstrom_types == ["unseen"]
    followed = with_baseline(send(0, "1", 1, None, type="info"), assign(1, ["1"], {}), poll(1, {"1": [[0, 1]]}),
                             poll(1, {}))
    assert check(followed).valid


# --- Maelstrom's generator: keys the final polls never ask for ------------------------------

def final_phase(workload: Workload, main: list[list[Op]], late: list[list[Op]],
                polls: list[list[Op]]) -> list[Op]:
    """A run's history as the runner records it: the main phase's ops, learned by the workload;
    then the main generator stops tracking, ops still in flight complete (`late`), and each of
    two final clients assigns the keys the workload tracked with a seek to the beginning, then
    polls (`polls`)."""
    for part in main:
        for op in part:
            workload.observe(op)
    workload.tracking = False
    for part in late:
        for op in part:
            workload.observe(op)
    keys = workload.keys_used()
    return history(*main, *late, assign(5, keys), assign(6, keys), *polls)


def test_an_unseen_key_no_final_assign_named_is_explained_by_maelstroms_generator():
    # Key 2's only send is acknowledged after the main generator stopped tracking keys: the
    # final polls never ask for it, so it is unseen whatever the node does. Maelstrom says
    # invalid, and so do we; the cases and the verdict say why.
    ops = final_phase(Workload(random.Random(1), max_writes_per_key=4),
                      main=[*BASELINE, sends("1", 2)], late=[send(0, "2", 1, 0)],
                      polls=[poll(5, {"1": [[0, 1], [1, 2]], "9": [[0, 1]]}), poll(6, {"1": [[0, 1], [1, 2]]})])
    assert [op.value["keys"] for op in ops if op.f == "assign" and op.value["seek_to_beginning"]][-1] == ["1", "9"]
    verdict = check(ops)
    assert (verdict.valid, verdict.maelstrom_valid, verdict.maelstrom_types) == (False, False, ["unseen"])
    assert [(case["key"], case["values"], case["key_in_final_assign"]) for case in verdict.anomalies["unseen"]] == [
        ("2", [1], False)]
    assert verdict.unseen_only_untracked_keys
    data = report.verdict_data(verdict)
    assert data["maelstrom"]["unseen_only_untracked_keys"] is True
    lines = report.verdict_lines(data)
    assert "  key '2': 1 acknowledged message never polled (values 1); no final poll asked for this key" in lines
    assert f"  {report.UNTRACKED_UNSEEN}" in lines and lines[-1] == report.BAD


def test_an_unseen_key_the_final_assign_named_is_not_explained():
    # Key 2 was tracked and assigned by the final polls, which never read it: the node's doing.
    # Key 3, acknowledged late, is explained on its own, but not the verdict as a whole.
    ops = final_phase(Workload(random.Random(1), max_writes_per_key=4),
                      main=[*BASELINE, sends("1", 2), send(0, "2", 1, 0)], late=[send(0, "3", 1, 0)],
                      polls=[poll(5, {"1": [[0, 1], [1, 2]], "9": [[0, 1]]}), poll(6, {})])
    verdict = check(ops)
    assert verdict.maelstrom_types == ["unseen"]
    assert [(case["key"], case["key_in_final_assign"]) for case in verdict.anomalies["unseen"]] == [
        ("2", True), ("3", False)]
    assert not verdict.unseen_only_untracked_keys
    data = report.verdict_data(verdict)
    assert data["maelstrom"]["unseen_only_untracked_keys"] is False
    lines = report.verdict_lines(data)
    assert "  key '2': 1 acknowledged message never polled (values 1)" in lines
    assert f"  {report.UNTRACKED_UNSEEN}" not in lines


def test_without_final_polls_no_unseen_key_is_said_to_be_left_out_of_them():
    verdict = check(FLAGGED["unseen"][0])
    assert [case["key_in_final_assign"] for case in verdict.anomalies["unseen"]] == [None]
    assert not verdict.unseen_only_untracked_keys


# --- committed offsets (checked with --restart-every) ---------------------------------------

REGRESSION = with_baseline(sends("1", 2), assign(0, ["1"], {}), poll(0, {"1": [[0, 1], [1, 2]]}),
                           assign(1, ["1"], {}))


def test_committed_offset_listed_as_absent_after_an_acknowledged_commit_is_a_regression():
    verdict = check(REGRESSION, committed_offsets=True)
    case = verdict.anomalies["committed-offset-regression"][0]
    assert (case["key"], case["committed"], case["listed"]) == ("1", 1, None)
    assert [ref["f"] for ref in case["ops"]] == ["poll", "assign"]
    assert verdict.maelstrom_valid is True and verdict.stricter_types == ["committed-offset-regression"]


def test_committed_offset_listed_lower_is_a_regression():
    ops = with_baseline(sends("1", 2), assign(0, ["1"], {}), poll(0, {"1": [[0, 1], [1, 2]]}),
                        assign(1, ["1"], {"1": 0}))
    assert check(ops, committed_offsets=True).anomalies["committed-offset-regression"][0]["listed"] == 0


def test_committed_offsets_are_only_checked_when_asked():
    assert "committed-offset-regression" not in check(REGRESSION).anomalies


def test_a_listing_that_began_before_the_commit_completed_may_miss_it():
    commit_op = poll(0, {"1": [[0, 1]]})
    listing = assign(1, ["1"], {})
    # The listing is invoked first and completes after the poll (and its commit) completed.
    ops = with_baseline(send(0, "1", 1, 0), assign(0, ["1"], {}), [listing[0], *commit_op, listing[1]])
    assert check(ops, committed_offsets=True).valid


# --- findings only the runner has -------------------------------------------------------------

def test_an_aborted_test_fails_the_stricter_verdict_only():
    verdict = with_stricter(check(history(*BASELINE)), "aborted", [{"reason": "the node exited on its own with status 1"}])
    assert (verdict.valid, verdict.maelstrom_valid, verdict.stricter_types) == (False, True, ["aborted"])
    assert report.describe("aborted", verdict.anomalies["aborted"][0]).startswith("the node exited")


# --- keys that are not plain integers --------------------------------------------------------

def test_keys_sort_integers_numerically_then_the_rest_as_text():
    assert sorted(["10", "²", "b", "2", "", "٣"], key=key_order) == ["2", "10", "", "b", "²", "٣"]


def test_a_key_of_unicode_digits_is_judged_like_any_other():
    # "²".isdigit() is true, but int("²") raises: the checker must not take it for a number.
    ops = with_baseline(send(0, "²", 1, 0), send(0, "²", 2, 1), send(0, "10", 1, 0),
                        assign(1, ["²", "10"], {}), poll(1, {"²": [[0, 1]], "10": [[0, 1]]}))
    verdict = check(ops, committed_offsets=True)
    assert [case["key"] for case in verdict.anomalies["unseen"]] == ["²"]
    assert set(verdict.anomalies) == {"unseen"}


def test_the_workload_lists_unicode_digit_keys_without_failing():
    workload = Workload(random.Random(1), max_writes_per_key=4)
    msgs = {"²": [[0, 1]], "12": [[0, 1]]}
    workload.observe(Op(process=0, type="ok", f="poll", value={"offsets": {}, "msgs": msgs}))
    assert workload.keys_used() == ["12", "²"]


def test_the_final_polls_wait_for_a_key_polled_empty_as_jepsen_does():
    # op->max-offsets counts a key returned with no messages as offset -1.
    workload = Workload(random.Random(1), max_writes_per_key=4)
    workload.observe(Op(process=0, type="ok", f="poll", value={"offsets": {"3": 0}, "msgs": {"3": []}}))
    assert workload.max_offsets == {"3": -1}


def test_the_workload_assigns_keys_sent_but_not_yet_polled():
    # Jepsen's poll-unseen: about a third of the assigns also take the keys sent but not yet
    # polled; once polled that far, a key is no longer added.
    workload = Workload(random.Random(7), max_writes_per_key=16)
    workload.observe(Op(process=0, type="ok", f="send", value={"key": "5", "msg": 1, "offset": 0}))
    assigns = [value["keys"] for f, value in (workload.next_op() for _ in range(20_000)) if f == "assign"]
    assert any("5" in keys for keys in assigns) and not all("5" in keys for keys in assigns)
    workload.observe(Op(process=0, type="ok", f="poll", value={"offsets": {}, "msgs": {"5": [[0, 1]]}}))
    later = [value["keys"] for f, value in (workload.next_op() for _ in range(20_000)) if f == "assign"]
    assert not any("5" in keys and keys[0] != "5" for keys in later)


# --- histories that must pass ---------------------------------------------------------------

CLEAN = {
    "sparse offsets": with_baseline(
        send(0, "1", 1, 0), send(0, "1", 2, 5), send(0, "1", 3, 10), assign(1, ["1"], {}),
        poll(1, {"1": [[0, 1], [5, 2]]}), poll(1, {"1": [[10, 3]]})),
    "a poll from an offset in a gap of sparse offsets": with_baseline(
        send(0, "1", 1, 0), send(0, "1", 2, 5), assign(1, ["1"], {}), poll(1, {"1": [[0, 1]]}),
        poll(1, {"1": [[5, 2]]})),
    "empty and short polls": with_baseline(
        sends("1", 3), assign(1, ["1"], {}),
        poll(1, {}), poll(1, {"1": [[0, 1]]}), poll(1, {}), poll(1, {"1": [[1, 2]]}), poll(1, {"1": [[2, 3]]})),
    "an assign that keeps a key keeps its position": with_baseline(
        sends("1", 3), send(0, "2", 1, 0), assign(1, ["1"], {}),
        poll(1, {"1": [[0, 1]]}), assign(1, ["1", "2"], {"1": 0}),
        poll(1, {"1": [[1, 2], [2, 3]], "2": [[0, 1]]})),
    "an assign to another key forgets the first": with_baseline(
        sends("1", 3), assign(1, ["1"], {}), poll(1, {"1": [[0, 1], [1, 2], [2, 3]]}),
        assign(1, ["2"], {}), assign(1, ["1"], {"1": 2}), poll(1, {"1": [[0, 1], [1, 2], [2, 3]]})),
    "different clients read the same messages": with_baseline(
        sends("1", 2), assign(1, ["1"], {}), assign(2, ["1"], {}),
        poll(1, {"1": [[0, 1], [1, 2]]}), poll(2, {"1": [[0, 1]]}), poll(2, {"1": [[1, 2]]})),
    "an indeterminate send that was applied": with_baseline(
        send(0, "1", 1, None, type="info"), assign(1, ["1"], {}), poll(1, {"1": [[0, 1]]}), poll(1, {})),
    "a poll whose commit failed, read again by a fresh client": with_baseline(
        sends("1", 2), assign(1, ["1"], {}),
        poll(1, {"1": [[0, 1]]}, type="info"), assign(2, ["1"], {}), poll(2, {"1": [[0, 1], [1, 2]]})),
    "a poll reading a message not acknowledged yet": with_baseline(
        [Op(process=0, type="invoke", f="send", value={"key": "1", "msg": 1})],
        assign(1, ["1"], {}), poll(1, {"1": [[0, 1]]}),
        [Op(process=0, type="ok", f="send", value={"key": "1", "msg": 1, "offset": 0})], poll(1, {})),
    "committed offsets that only grow": with_baseline(
        sends("1", 2), assign(0, ["1"], {}), poll(0, {"1": [[0, 1]]}),
        assign(1, ["1"], {"1": 0}), poll(1, {"1": [[0, 1], [1, 2]]}), assign(2, ["1"], {"1": 1})),
    "non-integer messages": with_baseline(
        send(0, "1", {"b": [1, 2], "a": None}, 0), send(0, "1", "text", 1), assign(1, ["1"], {}),
        poll(1, {"1": [[0, {"a": None, "b": [1, 2]}], [1, "text"]]})),
    "keys that are not integers": with_baseline(
        send(0, "²", 1, 0), send(0, "", 1, 0), send(0, "ключ", 1, 0), assign(1, ["²", "", "ключ"], {}),
        poll(1, {"²": [[0, 1]], "": [[0, 1]], "ключ": [[0, 1]]})),
}


@pytest.mark.parametrize("ops", CLEAN.values(), ids=CLEAN.keys())
def test_legitimate_history_passes_both_verdicts(ops):
    verdict = check(ops, committed_offsets=True)
    assert verdict.valid, verdict.anomalies
    assert (verdict.maelstrom_valid, verdict.stricter_valid, verdict.anomalies) == (True, True, {})


def test_history_round_trips_through_jsonl(tmp_path):
    ops, *_ = FLAGGED["poll-skip"]
    write_jsonl(ops, tmp_path / "history.jsonl")
    again = read_jsonl(tmp_path / "history.jsonl")
    assert again == ops
    assert check(again).anomalies == check(ops).anomalies
