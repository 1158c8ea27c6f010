"""`maelstrom-kafka-test check PATH`, the installed command: it judges this runner's
history.jsonl and Maelstrom's history.edn (records, maps, or one vector) alike, prints the
summary or one JSON object, exits as Jepsen does (0 valid, 1 invalid, 2 unknown), and refuses
unreadable input with exit 254 naming file and line."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from kafka_node.maelstrom.edn_history import read_edn
from kafka_node.maelstrom.history import write_jsonl

from support.histories import FLAGGED, assign, history, poll, send, sends, with_baseline
from support.maelstrom_edn import write_edn
from support.scripts import installed_script


def run_check(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([installed_script("maelstrom-kafka-test"), "check", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def as_json(done: subprocess.CompletedProcess) -> dict:
    return json.loads(done.stdout)


VALID = history(sends("1", 3), send(0, "2", 1, 0), assign(1, ["1", "2"], {}),
                poll(1, {"1": [[0, 1], [1, 2]], "2": [[0, 1]]}), poll(1, {"1": [[2, 3]]}))
LOST, *_ = FLAGGED["lost-write"]


@pytest.mark.parametrize("shape", ["records", "maps", "vector"])
def test_maelstroms_history_edn_of_each_shape_is_judged(tmp_path, shape):
    for name, ops, status in (("valid", VALID, 0), ("lost", LOST, 1)):
        path = tmp_path / f"{name}.edn"
        write_edn(ops, path, shape)
        done = run_check(path, "--json")
        assert done.returncode == status, done.stderr
        data = as_json(done)
        assert data["operations"] == len(ops)
        assert data["valid"] is (status == 0) and data["maelstrom"]["valid"] is (status == 0)
        if status:
            assert data["anomaly_types"] == ["lost-write", "unseen"]
            assert [case["value"] for case in data["anomalies"]["lost-write"]] == [1, 2]


def test_edn_keeps_what_the_checker_needs(tmp_path):
    write_edn(LOST, tmp_path / "history.edn")
    ops = read_edn(tmp_path / "history.edn")
    assert [(op.index, op.process, op.type, op.f) for op in ops] == [
        (op.index, op.process, op.type, op.f) for op in LOST]
    sent = next(op for op in ops if op.f == "send" and op.type == "ok")
    assert sent.value == {"key": "9", "msg": 1, "offset": 0}
    read = next(op for op in ops if op.f == "poll" and op.type == "ok")
    assert read.value == {"msgs": {"9": [[0, 1]]}}


def test_the_summary_names_both_verdicts_and_exits_1_when_one_fails(tmp_path):
    write_jsonl(LOST, tmp_path / "history.jsonl")
    done = run_check(tmp_path / "history.jsonl")
    assert done.returncode == 1
    assert "Maelstrom's verdict: invalid (lost-write, unseen)" in done.stdout
    assert "our stricter checks: failed (asked-offset-skip)" in done.stdout and done.stdout.rstrip().endswith("┻━┻")
    write_jsonl(VALID, tmp_path / "valid.jsonl")
    done = run_check(tmp_path / "valid.jsonl")
    assert done.returncode == 0 and "Everything looks good!" in done.stdout


def test_an_unknown_verdict_exits_2_and_a_failed_availability_check_1(tmp_path):
    unknown = with_baseline(send(0, "1", 1, 0), send(2, "2", 5, None, type="fail"), assign(1, ["1"], {}),
                            poll(1, {"1": [[0, "1"]]}))
    write_jsonl(unknown, tmp_path / "unknown.jsonl")
    done = run_check(tmp_path / "unknown.jsonl", "--json")
    assert done.returncode == 2, done
    assert as_json(done)["validity"] == "unknown"
    done = run_check(tmp_path / "unknown.jsonl", "--availability", "total", "--json")
    assert done.returncode == 1, "Jepsen: false beats unknown"
    assert as_json(done)["availability"]["valid"] is False


def test_availability_is_the_fraction_of_invocations_that_completed_ok(tmp_path):
    partly = history(sends("1", 3), send(0, "2", 1, 0), send(2, "3", 9, None, type="fail"), assign(1, ["1", "2"], {}),
                     poll(1, {"1": [[0, 1], [1, 2]], "2": [[0, 1]]}), poll(1, {"1": [[2, 3]]}))  # one send failed
    write_jsonl(partly, tmp_path / "history.jsonl")
    invoked = sum(1 for op in partly if op.type == "invoke")
    ok = sum(1 for op in partly if op.type == "ok")
    assert ok == invoked - 1
    assert run_check(tmp_path / "history.jsonl").returncode == 0
    done = run_check(tmp_path / "history.jsonl", "--availability", "total", "--json")
    found = as_json(done)["availability"]
    assert (found["ok"], found["invoked"], found["valid"]) == (ok, invoked, False) and done.returncode == 1
    done = run_check(tmp_path / "history.jsonl", "--availability", f"{math.floor(ok / invoked * 1e6) / 1e6}")
    assert done.returncode == 0, done.stdout
    done = run_check(tmp_path / "history.jsonl", "--availability", f"{math.ceil(ok / invoked * 1e6) / 1e6 + 1e-6}")
    assert done.returncode == 1 and "--availability asks for at least" in done.stdout


def test_a_history_edn_in_a_directory_is_found(tmp_path):
    write_edn(VALID, tmp_path / "history.edn")
    done = run_check(tmp_path, "--json")
    assert done.returncode == 0 and as_json(done)["history"].endswith("history.edn")


def test_nemesis_operations_are_left_out(tmp_path):
    path = tmp_path / "history.edn"
    write_edn(VALID, path)
    with open(path, "a") as out:
        out.write('{:index 99, :time 1, :type :info, :process :nemesis, :f :start-partition, :value nil}\n')
    done = run_check(path, "--json")
    assert done.returncode == 0 and as_json(done)["operations"] == len(VALID)


def test_a_poll_with_a_null_list_counts_as_an_empty_read(tmp_path):
    # Maelstrom's schema lets {"k": null} through; Jepsen reads it as an empty list.
    path = tmp_path / "history.edn"
    write_edn(VALID, path)
    with open(path, "a") as out:
        out.write('{:process 7, :type :invoke, :f :poll, :value [[:poll]]}\n'
                  '{:process 7, :type :ok, :f :poll, :value [[:poll {"1" nil}]]}\n')
    done = run_check(path, "--json")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(("name", "text", "message"), [
    ("history.jsonl", '{"process":0,"type":"invoke","f":"poll"}\n\nnot json\n', "history.jsonl:3: "),
    ("history.edn", '{:process 0, :type :invoke, :f :poll, :value [[:poll]]}\n{:process 0 :type\n',
     "history.edn:2: not EDN"),
    ("history.edn", '{:process 0, :type :ok, :f :txn, :value [[:poll {}]]}\n', "history.edn:1: a :txn operation"),
    ("history.edn", '{:process 0, :type :ok, :f :send, :value [[:send "1" [0 1]] [:send "1" [1 2]]]}\n',
     "history.edn:1: send with 2 micro-operations"),
    ("history.edn", '{:process 0, :type :ok, :f :poll, :value [[:poll {"1" [[0 1]]}]]}\n'
                    '{:process 0, :type :ok, :f :send, :value [[:send :k [0 1]]]}\n',
     "history.edn:2: a key must be a string or an integer"),
    ("history.edn", '{:process 0, :type :ok, :f :poll, :value [[:poll]]}\n#unknown.Tag{:a 1}\n', "history.edn:2:"),
])
def test_unreadable_input_exits_254_naming_the_file_and_line(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    done = run_check(tmp_path / name)
    assert done.returncode == 254, done
    assert message in done.stderr and done.stdout == ""


@pytest.mark.parametrize("target", ["missing", "empty-dir"])
def test_a_path_without_a_history_exits_254(tmp_path, target):
    (tmp_path / "empty-dir").mkdir()
    done = run_check(tmp_path / target)
    assert done.returncode == 254
    assert str(tmp_path / target) in done.stderr
