"""The kafka checker against hand-built histories: each anomaly is flagged with its type and
key, and legitimate histories (sparse offsets, empty polls, rewinding assigns) pass."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import pytest

from kafka_node.maelstrom import report
from kafka_node.maelstrom.checker import ANOMALY_TYPES, check
from kafka_node.maelstrom.history import Op, key_order, read_jsonl, write_jsonl
from kafka_node.maelstrom.workload import Workload

# --- building histories --------------------------------------------------------------------
# Each helper returns the invocation and completion of one operation by `process`; `history`
# numbers and times them in order, 1 ms apart, and gives each poll the offsets its client
# would have asked for, as the runner's client does: the start of the process's last ok
# assign, advanced past every message it polled since (a process never assigned asks {}).


def send(process: int, key: str, msg: Any, offset: int | None, type: str = "ok") -> list[Op]:
    value = {"key": key, "msg": msg}
    done = {**value, "offset": offset} if type == "ok" else value
    return [Op(process=process, type="invoke", f="send", value=value),
            Op(process=process, type=type, f="send", value=done, error=None if type == "ok" else "error 11: no")]


def poll(process: int, msgs: dict[str, list[list[Any]]], type: str = "ok",
         asked: dict[str, int] | None = None) -> list[Op]:
    """A poll reading `msgs`; `asked` overrides the offsets `history` would fill in."""
    given = {} if asked is None else {"offsets": asked}
    return [Op(process=process, type="invoke", f="poll", value=dict(given)),
            Op(process=process, type=type, f="poll", value={**given, "msgs": msgs})]


def assign(process: int, keys: list[str], committed: dict[str, int] | None = None) -> list[Op]:
    """An assign from the committed offsets listed (or from 0 with none: seek to beginning)."""
    value = {"keys": keys, "seek_to_beginning": committed is None}
    done = {**value, "start": {k: (committed or {}).get(k, 0) for k in keys}}
    if committed is not None:
        done["committed"] = committed
    return [Op(process=process, type="invoke", f="assign", value=value),
            Op(process=process, type="ok", f="assign", value=done)]


def history(*parts: list[Op]) -> list[Op]:
    ops = [op for part in parts for op in part]
    positions: dict[int, dict[str, int]] = defaultdict(dict)  # process -> key -> next offset
    for i, op in enumerate(ops):
        op.index, op.time, op.client = i, i * 1_000_000, f"c{op.process + 1}"
        position = positions[op.process]
        if op.f == "assign" and op.type == "ok":
            positions[op.process] = dict(op.value["start"])
        elif op.f == "poll":
            op.value = {"offsets": dict(position), **op.value}
            if op.type == "invoke":
                continue
            asked = op.value["offsets"]
            commit = {key: max(o for o, _ in pairs) for key, pairs in op.value["msgs"].items()
                      if pairs and key in asked}
            if commit:
                op.value["commit"] = commit
            for key, offset in commit.items():
                position[key] = max(position.get(key, 0), offset + 1)
    return ops


#: Successful assign/poll/send ops, so that the stats rule holds in every history below.
BASELINE = [assign(9, ["9"], {}), send(9, "9", 1, 0), poll(9, {"9": [[0, 1]]})]


def with_baseline(*parts: list[Op]) -> list[Op]:
    return history(*BASELINE, *parts)


def sends(key: str, count: int) -> list[Op]:
    """`count` acknowledged sends of values 1, 2, ... at offsets 0, 1, ... (process 0)."""
    return [op for value in range(1, count + 1) for op in send(0, key, value, value - 1)]


# --- histories that must be flagged ---------------------------------------------------------

FLAGGED = {
    "inconsistent-offsets": (
        with_baseline(send(0, "1", 1, 0), send(1, "1", 2, 0), assign(2, ["1"]), poll(2, {"1": [[0, 1]]})),
        "inconsistent-offsets", "1", {"offset": 0, "values": [1, 2]},
    ),
    "duplicate": (
        with_baseline(send(0, "1", 1, 0), assign(1, ["1"]), poll(1, {"1": [[0, 1], [1, 1]]})),
        "duplicate", "1", {"value": 1, "offsets": [0, 1]},
    ),
    "lost-write": (
        with_baseline(sends("1", 3), assign(1, ["1"], {"1": 2}), poll(1, {"1": [[2, 3]]})),
        "lost-write", "1", {"value": 1, "offset": 0, "max_read_offset": 2},
    ),
    "unseen": (
        with_baseline(send(0, "1", 1, 0), poll(1, {})),
        "unseen", "1", {"value": 1, "offset": 0},
    ),
    "nonmonotonic-send": (
        with_baseline(send(0, "1", 1, 5), send(0, "1", 2, 3), assign(1, ["1"]), poll(1, {"1": [[3, 2], [5, 1]]})),
        "nonmonotonic-send", "1", {"offsets": [5, 3], "values": [1, 2]},
    ),
    "poll-skip": (
        with_baseline(sends("1", 3), assign(1, ["1"]), poll(1, {"1": [[0, 1]]}), poll(1, {"1": [[2, 3]]}),
                      assign(2, ["1"]), poll(2, {"1": [[0, 1], [1, 2], [2, 3]]})),
        "poll-skip", "1", {"offsets": [0, 2], "skipped": [{"offset": 1, "values": [2]}]},
    ),
    "poll-skip from the asked offset": (
        with_baseline(sends("1", 4), assign(1, ["1"]), poll(1, {"1": [[3, 4]]})),
        "poll-skip", "1", {"asked": 0, "offset": 3, "skipped": [{"offset": o, "values": [o + 1]} for o in range(3)]},
    ),
    "poll-skip after seeking to the beginning": (
        with_baseline(sends("1", 3), assign(1, ["1"]), poll(1, {"1": [[0, 1], [1, 2], [2, 3]]}),
                      assign(1, ["1"]), poll(1, {"1": [[2, 3]]})),
        "poll-skip", "1", {"asked": 0, "offset": 2, "skipped": [{"offset": 0, "values": [1]},
                                                                {"offset": 1, "values": [2]}]},
    ),
    "poll-skip from a committed offset": (
        with_baseline(sends("1", 3), assign(1, ["1"], {"1": 1}), poll(1, {"1": [[2, 3]]})),
        "poll-skip", "1", {"asked": 1, "offset": 2, "skipped": [{"offset": 1, "values": [2]}]},
    ),
    "nonmonotonic-poll": (
        with_baseline(sends("1", 2), assign(1, ["1"]), poll(1, {"1": [[0, 1], [1, 2]]}), poll(1, {"1": [[1, 2]]})),
        "nonmonotonic-poll", "1", {"offsets": [1, 1]},
    ),
    "nonmonotonic-poll below the asked offset": (
        with_baseline(sends("1", 2), assign(1, ["1"], {"1": 1}), poll(1, {"1": [[0, 1], [1, 2]]})),
        "nonmonotonic-poll", "1", {"asked": 1, "offset": 0, "value": 1},
    ),
    "nonmonotonic-poll after a failed assign": (
        with_baseline(sends("1", 2), assign(1, ["1"]), poll(1, {"1": [[0, 1], [1, 2]]}),
                      [Op(process=1, type="invoke", f="assign", value={"keys": ["1"], "seek_to_beginning": False}),
                       Op(process=1, type="fail", f="assign", value={"keys": ["1"], "seek_to_beginning": False})],
                      poll(1, {"1": [[0, 1]]})),
        "nonmonotonic-poll", "1", {"offsets": [1, 0]},
    ),
    "int-poll-skip": (
        with_baseline(sends("1", 3), assign(1, ["1"]), poll(1, {"1": [[0, 1], [2, 3]]}),
                      assign(2, ["1"], {"1": 1}), poll(2, {"1": [[1, 2]]})),
        "int-poll-skip", "1", {"offsets": [0, 2], "skipped": [{"offset": 1, "values": [2]}]},
    ),
    "int-nonmonotonic-poll": (
        with_baseline(sends("1", 2), assign(1, ["1"], {"1": 1}), poll(1, {"1": [[1, 2], [0, 1]]})),
        "int-nonmonotonic-poll", "1", {"offsets": [1, 0], "values": [2, 1]},
    ),
    "unasked-key": (
        with_baseline(send(0, "1", 1, 0), send(0, "2", 1, 0), assign(1, ["1"]),
                      poll(1, {"1": [[0, 1]], "2": [[0, 1]]})),
        "unasked-key", "2", {"offsets": [0], "asked_keys": 1},
    ),
    "unasked-key in a new client's poll": (
        with_baseline(send(0, "1", 1, 0), poll(1, {"1": [[0, 1]]})),
        "unasked-key", "1", {"offsets": [0], "asked_keys": 0},
    ),
    "G1a": (
        with_baseline(send(0, "1", 1, None, type="fail"), assign(1, ["1"]), poll(1, {"1": [[0, 1]]})),
        "G1a", "1", {"value": 1, "offset": 0},
    ),
    "stats": (
        history(send(0, "1", 1, 0), poll(0, {"1": [[0, 1]]}, asked={"1": 0})),
        "stats", None, {"f": "assign", "ok": 0},
    ),
}


@pytest.mark.parametrize(("ops", "anomaly", "key", "expected"), FLAGGED.values(), ids=FLAGGED.keys())
def test_anomaly_is_flagged_with_its_key_and_details(ops, anomaly, key, expected):
    verdict = check(ops)
    assert not verdict.valid
    assert anomaly in verdict.anomalies, verdict.anomalies
    case = verdict.anomalies[anomaly][0]
    assert case.get("key") == key
    assert {name: case[name] for name in expected} == expected
    assert all(ref["index"] >= 0 for ref in case.get("ops", []))


@pytest.mark.parametrize(("ops", "anomaly", "key", "expected"), FLAGGED.values(), ids=FLAGGED.keys())
def test_summary_describes_each_anomaly(ops, anomaly, key, expected):
    case = check(ops).anomalies[anomaly][0]
    sentence = report.describe(anomaly, case)
    assert (repr(key) if key else case["f"]) in sentence
    assert "{" not in sentence  # a sentence, not a dump of the case


def test_lost_write_cites_the_writer_and_a_reader_of_the_highest_offset():
    ops, *_ = FLAGGED["lost-write"]
    case = check(ops).anomalies["lost-write"][0]
    writer, reader = case["ops"]
    assert (writer["f"], writer["value"]["msg"]) == ("send", 1)
    assert reader["f"] == "poll" and reader["value"]["msgs"] == [[2, 3]]


def test_poll_skip_cites_both_polls_narrowed_to_the_key():
    ops, *_ = FLAGGED["poll-skip"]
    before, after = check(ops).anomalies["poll-skip"][0]["ops"]
    assert before["value"]["msgs"] == [[0, 1]] and after["value"]["msgs"] == [[2, 3]]
    assert before["process"] == after["process"] == 1


def test_a_skip_from_the_asked_offset_is_described_from_the_poll_alone():
    ops, *_ = FLAGGED["poll-skip after seeking to the beginning"]
    case = check(ops).anomalies["poll-skip"][0]
    assert [ref["value"]["offsets"] for ref in case["ops"]] == [0]  # the poll, narrowed to the key
    sentence = report.describe("poll-skip", case)
    assert "asked to poll from offset 0" in sentence and "offset 0 (value 1), offset 1 (value 2)" in sentence


def test_a_key_that_was_not_asked_is_not_judged_as_a_skip():
    ops = with_baseline(sends("1", 3), assign(1, ["2"]), poll(1, {"1": [[2, 3]]}))
    anomalies = check(ops).anomalies
    assert "unasked-key" in anomalies and "poll-skip" not in anomalies


# --- committed offsets (checked with --restart-every) ---------------------------------------

REGRESSION = with_baseline(sends("1", 2), assign(0, ["1"]), poll(0, {"1": [[0, 1], [1, 2]]}),
                           assign(1, ["1"], {}))


def test_committed_offset_listed_as_absent_after_an_acknowledged_commit_is_a_regression():
    verdict = check(REGRESSION, committed_offsets=True)
    case = verdict.anomalies["committed-offset-regression"][0]
    assert (case["key"], case["committed"], case["listed"]) == ("1", 1, None)
    assert [ref["f"] for ref in case["ops"]] == ["poll", "assign"]


def test_committed_offset_listed_lower_is_a_regression():
    ops = with_baseline(sends("1", 2), assign(0, ["1"]), poll(0, {"1": [[0, 1], [1, 2]]}),
                        assign(1, ["1"], {"1": 0}))
    assert check(ops, committed_offsets=True).anomalies["committed-offset-regression"][0]["listed"] == 0


def test_committed_offsets_are_only_checked_when_asked():
    assert "committed-offset-regression" not in check(REGRESSION).anomalies


def test_a_listing_that_began_before_the_commit_completed_may_miss_it():
    commit_op = poll(0, {"1": [[0, 1]]})
    listing = assign(1, ["1"], {})
    # The listing is invoked first and completes after the poll (and its commit) completed.
    ops = with_baseline(send(0, "1", 1, 0), assign(0, ["1"]), [listing[0], *commit_op, listing[1]])
    assert check(ops, committed_offsets=True).valid


# --- keys that are not plain integers --------------------------------------------------------

def test_keys_sort_integers_numerically_then_the_rest_as_text():
    assert sorted(["10", "²", "b", "2", "", "٣"], key=key_order) == ["2", "10", "", "b", "²", "٣"]


def test_a_key_of_unicode_digits_is_judged_like_any_other():
    # "²".isdigit() is true, but int("²") raises: the checker must not take it for a number.
    ops = with_baseline(send(0, "²", 1, 0), send(0, "²", 2, 1), send(0, "10", 1, 0),
                        assign(1, ["²", "10"]), poll(1, {"²": [[0, 1]], "10": [[0, 1]]}))
    verdict = check(ops, committed_offsets=True)
    assert [case["key"] for case in verdict.anomalies["unseen"]] == ["²"]
    assert set(verdict.anomalies) == {"unseen"}


def test_the_workload_lists_unicode_digit_keys_without_failing():
    workload = Workload(random.Random(1), max_writes_per_key=4)
    msgs = {"²": [[0, 1]], "12": [[0, 1]]}
    workload.observe(Op(process=0, type="ok", f="poll", value={"offsets": {}, "msgs": msgs}))
    assert workload.keys_used() == ["12", "²"]


# --- histories that must pass ---------------------------------------------------------------

CLEAN = {
    "sparse offsets": with_baseline(
        send(0, "1", 1, 0), send(0, "1", 2, 5), send(0, "1", 3, 10), assign(1, ["1"]),
        poll(1, {"1": [[0, 1], [5, 2]]}), poll(1, {"1": [[10, 3]]})),
    "an assign to an offset in a gap of sparse offsets": with_baseline(
        send(0, "1", 1, 0), send(0, "1", 2, 5), assign(1, ["1"], {"1": 3}), poll(1, {"1": [[5, 2]]}),
        assign(1, ["1"]), poll(1, {"1": [[0, 1], [5, 2]]})),
    "empty and short polls": with_baseline(
        sends("1", 3), assign(1, ["1"]),
        poll(1, {}), poll(1, {"1": []}), poll(1, {"1": [[0, 1]]}), poll(1, {"1": []}),
        poll(1, {"1": [[1, 2]]}), poll(1, {"1": [[2, 3]]})),
    "assign that rewinds to the committed offset": with_baseline(
        sends("1", 3), assign(1, ["1"]),
        poll(1, {"1": [[0, 1], [1, 2]]}), assign(1, ["1"], {"1": 1}),
        poll(1, {"1": [[1, 2], [2, 3]]})),
    "assign that seeks to the beginning": with_baseline(
        sends("1", 2), assign(1, ["1"]),
        poll(1, {"1": [[0, 1], [1, 2]]}), assign(1, ["1"]), poll(1, {"1": [[0, 1], [1, 2]]})),
    "different clients read the same messages": with_baseline(
        sends("1", 2), assign(1, ["1"]), assign(2, ["1"]),
        poll(1, {"1": [[0, 1], [1, 2]]}), poll(2, {"1": [[0, 1]]}), poll(2, {"1": [[1, 2]]})),
    "an indeterminate send that was applied": with_baseline(
        send(0, "1", 1, None, type="info"), assign(1, ["1"]), poll(1, {"1": [[0, 1]]})),
    "a poll whose commit failed, then the next poll": with_baseline(
        sends("1", 2), assign(1, ["1"]),
        poll(1, {"1": [[0, 1]]}, type="fail"), poll(1, {"1": [[1, 2]]})),
    "a poll reading a message not acknowledged yet": with_baseline(
        [Op(process=0, type="invoke", f="send", value={"key": "1", "msg": 1})],
        assign(1, ["1"]), poll(1, {"1": [[0, 1]]}),
        [Op(process=0, type="ok", f="send", value={"key": "1", "msg": 1, "offset": 0})]),
    "committed offsets that only grow": with_baseline(
        sends("1", 2), assign(0, ["1"]), poll(0, {"1": [[0, 1]]}),
        assign(1, ["1"], {"1": 0}), poll(1, {"1": [[0, 1], [1, 2]]}), assign(2, ["1"], {"1": 1})),
    "non-integer messages": with_baseline(
        send(0, "1", {"b": [1, 2], "a": None}, 0), send(0, "1", "text", 1), assign(1, ["1"]),
        poll(1, {"1": [[0, {"a": None, "b": [1, 2]}], [1, "text"]]})),
    "keys that are not integers": with_baseline(
        send(0, "²", 1, 0), send(0, "", 1, 0), send(0, "ключ", 1, 0), assign(1, ["²", "", "ключ"]),
        poll(1, {"²": [[0, 1]], "": [[0, 1]], "ключ": [[0, 1]]})),
}


@pytest.mark.parametrize("ops", CLEAN.values(), ids=CLEAN.keys())
def test_legitimate_history_passes(ops):
    verdict = check(ops, committed_offsets=True)
    assert verdict.valid, verdict.anomalies
    assert verdict.anomalies == {}


def test_every_anomaly_type_has_a_flagged_history():
    flagged = {anomaly for _, anomaly, _, _ in FLAGGED.values()} | {"committed-offset-regression"}
    assert flagged == set(ANOMALY_TYPES)


def test_history_round_trips_through_jsonl(tmp_path):
    ops, *_ = FLAGGED["poll-skip"]
    write_jsonl(ops, tmp_path / "history.jsonl")
    again = read_jsonl(tmp_path / "history.jsonl")
    assert again == ops
    assert check(again).anomalies == check(ops).anomalies
