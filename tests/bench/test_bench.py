"""The benchmark tool is correct (not fast): `maelstrom-kafka-bench load` measures real runs
against our node and the trivial node with zero errors, and catches every kind of wrong reply."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import Any

import apsw
import msgspec
import pytest

from kafka_node.bench import catchup, datasets, fsync, overtaking, rows, scale, suite
from kafka_node.bench.report import TABLE_END, TABLE_START, Row, Target, markdown_table, table_figures, with_table
from kafka_node.bench.trivial_node import TrivialNode
from kafka_node.bench.workload import parse_mix
from kafka_node.storage import Storage

from support.scripts import BROKEN_NODES, PROJECT_ROOT, installed_script

SHORT = ["--duration", "1", "--warmup", "0.2"]


def bench_load(*args: str, timeout: float = 30) -> tuple[int, dict[str, Any]]:
    """Run `maelstrom-kafka-bench load --json`; its exit status and decoded result."""
    finished = subprocess.run([installed_script("maelstrom-kafka-bench"), "load", "--json", *args],
                              capture_output=True, timeout=timeout)
    assert finished.returncode in (0, 1), finished.stderr.decode()
    return finished.returncode, msgspec.json.decode(finished.stdout)


def assert_sane(result: dict[str, Any], rpcs: set[str]) -> None:
    assert result["errors"] == {} and result["error_examples"] == []
    assert result["unanswered"] == 0
    assert result["exit_status"] == 0
    assert result["acknowledged"] > 0 and result["throughput"] > 0
    assert 0.5 < result["window_s"] < 5
    assert set(result["latency"]) == rpcs
    for summary in result["latency"].values():
        assert summary["count"] > 0
        assert 0 < summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"] <= summary["max_ms"]
    assert sum(s["count"] for s in result["latency"].values()) == result["acknowledged"]
    assert result["requests_sent"] >= result["acknowledged"]
    assert result["node_memory"]["peak_kib"] >= result["node_memory"]["now_kib"] > 0


def test_load_against_our_node_is_acknowledged_and_stored(tmp_path):
    db = tmp_path / "log.db"
    status, result = bench_load(*SHORT, "--db", str(db), "--mix", "send=2,poll=1,commit=1,list=1", "--keys", "20")
    assert status == 0
    assert_sane(result, {"send", "poll", "commit_offsets", "list_committed_offsets"})
    with apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY) as conn:
        stored = conn.execute("SELECT count(*) FROM messages").get
        keys = conn.execute("SELECT count(*) FROM log_keys").get
    assert stored >= result["latency"]["send"]["count"]
    assert keys <= 20


def test_load_against_the_trivial_node_measures_the_generator():
    status, result = bench_load(*SHORT, "--trivial", "--mix", "send=1,poll=1")
    assert status == 0
    assert_sane(result, {"send", "poll"})
    assert "kafka_node.bench.trivial_node" in result["command"]


def test_request_count_ends_the_window_at_exactly_that_many_with_one_in_flight():
    status, result = bench_load("--trivial", "--in-flight", "1", "--requests", "100", "--warmup", "0", "--mix", "poll=1")
    assert status == 0
    assert result["acknowledged"] == 100 == result["latency"]["poll"]["count"]
    assert result["requests_sent"] == 100


@pytest.mark.parametrize(("mode", "error"), [
    ("error", "error 11 in reply to send"),
    ("in-reply-to", "a reply to a msg_id not awaiting one"),
    ("type", "send answered with commit_offsets_ok"),
    ("extra-field", "a line that is not a reply"),
    ("garbage", "a line that is not a reply"),
])
def test_load_counts_every_wrong_reply(mode, error):
    status, result = bench_load("--bin", sys.executable, "--node-args", f"{BROKEN_NODES / 'bench_misreplying.py'} --mode {mode}",
                                "--requests", "300", "--warmup", "0", "--in-flight", "8")
    assert status == 1
    assert result["errors"].get(error, 0) > 0, result["errors"]
    assert set(result["errors"]) == {error}
    assert any(example.startswith(error) for example in result["error_examples"])
    # every fifth send is wrong, and a wrong reply is never measured as acknowledged
    assert result["errors"][error] == result["requests_sent"] // 5
    assert result["acknowledged"] == 300
    assert result["unanswered"] == (result["errors"][error] if mode in ("in-reply-to", "extra-field", "garbage") else 0)


def test_load_gives_up_on_a_node_that_stops_answering():
    status, result = bench_load("--bin", sys.executable, "--node-args", f"{BROKEN_NODES / 'bench_misreplying.py'} --mode silent",
                                "--duration", "5", "--warmup", "0", "--reply-timeout", "1")
    assert status == 1
    assert result["errors"] == {"no reply in time": 1}
    assert result["unanswered"] > 0


def test_a_node_that_does_not_answer_init_is_refused():
    finished = subprocess.run([installed_script("maelstrom-kafka-bench"), "load", "--bin", sys.executable,
                               "--node-args", "-c pass"], capture_output=True, timeout=30)
    assert finished.returncode == 2
    assert b"init" in finished.stderr


@pytest.mark.parametrize("text", ["", "send", "send=-1", "send=0,poll=0", "fetch=1", "send=x"])
def test_mix_must_name_known_requests_with_some_weight(text):
    with pytest.raises(ValueError):
        parse_mix(text)


def test_mix_accepts_short_and_full_names():
    assert parse_mix("send=3, commit=1,list_committed_offsets=2") == {
        "send": 3.0, "poll": 0.0, "commit_offsets": 1.0, "list_committed_offsets": 2.0}


def test_trivial_node_answers_every_request_correctly_shaped():
    requests = [
        {"src": "c1", "dest": "n0", "body": {"type": "init", "node_id": "n7", "node_ids": ["n7"], "msg_id": 1}},
        {"src": "c1", "dest": "n7", "body": {"type": "send", "key": "k", "msg": {"any": [1]}, "msg_id": 2}},
        {"src": "c2", "dest": "n7", "body": {"type": "send", "key": "k", "msg": 5, "msg_id": 3}},
        {"src": "c1", "dest": "n7", "body": {"type": "poll", "offsets": {"k": 0}, "msg_id": 4}},
        {"src": "c1", "dest": "n7", "body": {"type": "commit_offsets", "offsets": {"k": 1}, "msg_id": 5}},
        {"src": "c1", "dest": "n7", "body": {"type": "list_committed_offsets", "keys": ["k"], "msg_id": 6}},
        {"src": "c1", "dest": "n7", "body": {"type": "fetch", "msg_id": 7}},
    ]
    lines = b"".join(msgspec.json.encode(r) + b"\n" for r in requests) + b"not json\n"
    replies = [msgspec.json.decode(line) for line in TrivialNode().replies_to(lines).splitlines()]
    assert [r["body"] for r in replies] == [
        {"type": "init_ok", "in_reply_to": 1},
        {"type": "send_ok", "offset": 0, "in_reply_to": 2},
        {"type": "send_ok", "offset": 1, "in_reply_to": 3},
        {"type": "poll_ok", "msgs": {}, "in_reply_to": 4},
        {"type": "commit_offsets_ok", "in_reply_to": 5},
        {"type": "list_committed_offsets_ok", "offsets": {}, "in_reply_to": 6},
        {"type": "error", "code": 10, "text": "unsupported request type 'fetch'", "in_reply_to": 7},
    ]
    assert [(r["src"], r["dest"]) for r in replies] == [("n7", "c1"), ("n7", "c1"), ("n7", "c2")] + [("n7", "c1")] * 4


def test_trivial_node_fills_polls_only_up_to_the_offsets_handed_out():
    node = TrivialNode(fill_polls=True)
    sends = b"".join(msgspec.json.encode({"src": "c1", "dest": "n0", "body": {"type": "send", "key": "k", "msg": 1,
                                                                               "msg_id": i}}) + b"\n" for i in range(3))
    node.replies_to(sends)
    poll = msgspec.json.encode({"src": "c1", "dest": "n0", "body": {"type": "poll", "offsets": {"k": 1, "other": 0},
                                                                     "msg_id": 9}}) + b"\n"
    assert msgspec.json.decode(node.replies_to(poll))["body"]["msgs"] == {"k": [[1, 0], [2, 0]]}


def test_table_shows_each_figure_beside_its_baseline_and_verdict():
    shown = [
        Row(id="b", figure="sends", unit="/s", measured=40_000, baseline=80_000, baseline_is="durability off",
            target=Target(on="ratio", bound=">=", value=0.6, text="ratio >= 0.6")),
        Row(id="f", figure="start-up", unit="ms", measured=120.0, baseline=None, baseline_is="empty file",
            target=Target(on="measured", bound="<=", value=200, text="<= 200 ms")),
        Row(id="g", figure="memory", unit="MiB", measured=30.0, baseline=20.0, baseline_is="small",
            target=Target(on="measured", bound="<=", value=64, text="<= 64 MiB"),
            also=[Target(on="ratio", bound="<=", value=1.25, text="ratio <= 1.25")]),
    ]
    lines = markdown_table(shown).splitlines()
    assert lines[0].startswith("| | figure | measured | baseline (same run) | ratio | target | met? |")
    assert lines[2] == "| b | sends | 40,000 /s | 80,000 /s (durability off) | 0.50 | ratio >= 0.6 | **no** |"
    assert lines[3] == "| f | start-up | 120 ms | — (empty file) | — | <= 200 ms | yes |"
    assert lines[4].endswith("| 1.50 | <= 64 MiB; ratio <= 1.25 | **no** |")


def test_cached_log_is_built_once_and_reused(tmp_path):
    first = datasets.cached_log(tmp_path, 3, 4)
    with apsw.Connection(str(first)) as conn:
        conn.execute("INSERT INTO log_keys (key, next_offset) VALUES ('marker', 0)")
    again = datasets.cached_log(tmp_path, 3, 4)
    assert again == first
    with apsw.Connection(str(again), flags=apsw.SQLITE_OPEN_READONLY) as conn:
        assert conn.execute("SELECT count(*) FROM messages").get == 12
        assert conn.execute("SELECT count(*) FROM log_keys WHERE key = 'marker'").get == 1
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".db"] == [first.name]


def test_a_partition_log_is_one_leaders_batches_over_keys_of_its_partition_written_a_few_at_a_time(tmp_path):
    keys = catchup.partition_keys(20)
    assert all(catchup.partition_of(key, 3) == 0 for key in keys) and len(set(keys)) == 20
    lead = datasets.build_partition_log(tmp_path / "lead.db", keys, 5, per_batch=4, at_a_time=10)
    copy = datasets.replica_copy(lead, tmp_path / "copy.db")
    with apsw.Connection(str(lead), flags=apsw.SQLITE_OPEN_READONLY) as conn:
        batches = conn.execute("SELECT seq, count(*), min(part), max(part), min(epoch), max(epoch) FROM messages "
                               "GROUP BY seq ORDER BY seq").fetchall()
        assert batches == [(seq, 4, 0, 0, 1, 1) for seq in range(1, 26)]  # dense from 1, four messages each
        first_ten = sorted(keys)[:10]
        assert {key for (key,) in conn.execute("SELECT key FROM messages WHERE seq <= 12")} == set(first_ten)
        assert conn.execute("SELECT count(DISTINCT key), min(log_offset), max(log_offset) FROM messages").fetchall() == [
            (20, 0, 4)]
        assert dict(conn.execute("SELECT key, next_offset FROM log_keys")) == dict.fromkeys(keys, 5)
        rows_of = "SELECT key, log_offset, msg, part, seq, epoch FROM messages ORDER BY key, log_offset"
        lead_rows, lead_id = conn.execute(rows_of).fetchall(), conn.execute("SELECT file_id FROM file_identity").get
    with apsw.Connection(str(copy), flags=apsw.SQLITE_OPEN_READONLY) as conn:
        assert conn.execute(rows_of).fetchall() == lead_rows
        assert conn.execute("SELECT file_id FROM file_identity").get != lead_id  # another replica's file
    storage = Storage.open(str(lead))
    try:
        assert storage.replica.epoch_ranges(0) == ([(1, 1)], 25)  # as a replica reads its own log
    finally:
        storage.close()


@pytest.mark.parametrize(("fill", "rate"), [
    ([(0.0, 0), (1.0, 10), (2.0, 30), (3.0, 100)], 200),  # between the samples that saw it partly filled
    ([(0.0, 0), (0.5, 0), (1.0, 100)], 2000),  # filled between two samples: at least this fast
    ([(0.0, 0), (1.0, 50)], None),  # never seen full
    ([], None),
])
def test_the_catch_up_rate_is_read_off_the_followers_file_as_it_fills(fill, rate):
    assert catchup.fill_rate(fill, last=100, per_batch=10) == rate


def test_a_catch_up_runs_figures_come_from_the_runners_log_the_nodes_logs_and_the_history(tmp_path):
    (tmp_path / "node-logs").mkdir()
    (tmp_path / "jepsen.log").write_text(
        "2026-12-07 03:40:22,761 INFO test: {}\n"
        "2026-12-07 03:40:23,000 INFO n2 started (pid 12) and answered init\n"
        "2026-12-07 03:40:23,254 INFO phase main at 0.500 s\n"
        "2026-12-07 03:40:37,754 INFO phase recovery at 15.000 s\n")
    (tmp_path / "node-logs" / "n0.log").write_text(
        "2026-12-07 03:40:22,900 INFO kafka_node.replication: partition 0: lin-kv set leader=n0 epoch=2 isr=n0 elr=n1,n2 "
        "version=1\n"
        "2026-12-07 03:40:23,100 INFO kafka_node.replication: partition 1: lin-kv set leader=n0 epoch=2 isr=n0,n1,n2 "
        "elr= version=4\n"
        "2026-12-07 03:40:31,000 INFO kafka_node.replication: partition 0: lin-kv set leader=n0 epoch=2 isr=n0,n1,n2 "
        "elr= version=4\n")
    ops = [(1, "invoke", 0.2), (1, "ok", 0.21),  # before n2 started (0.246 s)
           (2, "invoke", 1.0), (2, "ok", 1.004), (3, "invoke", 2.0), (3, "fail", 2.5), (4, "invoke", 8.0), (4, "ok", 8.03),
           (5, "invoke", 8.3), (5, "ok", 8.301)]  # after it was back in sync (8.246 s)
    (tmp_path / "history.jsonl").write_text("".join(
        json.dumps({"time": int(at * 1e9), "process": process, "type": kind, "f": "send",
                    "value": {"key": "k", "msg": 1}}) + "\n" for process, kind, at in ops))
    origin, main_end = catchup.phases(tmp_path)
    start = catchup.started(tmp_path, "n2")
    assert (round(start - origin, 3), round(main_end - origin, 3)) == (0.246, 15.0)
    assert round(catchup.back_in_sync(tmp_path, "n2") - start, 3) == 8.0
    assert [round(ms, 3) for ms in sorted(catchup.send_latencies(tmp_path, start - origin, start - origin + 8))] == [
        0.004, 0.03]


def test_a_restarted_followers_file_lacks_the_partitions_last_messages_and_their_commits(tmp_path):
    keys = catchup.partition_keys(20)
    lead = scale.commit_every_key(datasets.build_partition_log(tmp_path / "lead.db", keys, 5, per_batch=1, at_a_time=10))
    behind = scale.behind_copy(lead, tmp_path / "behind.db", 30)  # the last 30 of the 50 messages of keys 10-19
    with apsw.Connection(str(behind), flags=apsw.SQLITE_OPEN_READONLY) as conn:
        assert conn.execute("SELECT count(*), max(seq) FROM messages").fetchall() == [(70, 70)]
        kept = dict(conn.execute("SELECT key, next_offset FROM log_keys"))
        committed = dict(conn.execute("SELECT key, committed_offset FROM log_keys"))
    first, last = sorted(keys)[:10], sorted(keys)[10:]
    assert kept == {**dict.fromkeys(first, 5), **dict.fromkeys(last, 2)}
    assert committed == {**dict.fromkeys(first, 4), **dict.fromkeys(last, 1)}
    storage = Storage.open(str(behind))
    try:
        assert storage.replica.epoch_ranges(0) == ([(1, 1)], 70)  # as the follower reads its log on restart
    finally:
        storage.close()


def test_a_scale_runs_figures_count_the_replicate_messages_of_the_partition_from_its_leader(tmp_path):
    (tmp_path / "node-logs").mkdir()
    def send(at: str, src: str, dest: str, body: dict[str, Any]) -> str:
        return f"2026-12-07 06:41:{at} INFO :send " + json.dumps({"id": 1, "src": src, "dest": dest, "body": body},
                                                                  separators=(",", ":")) + "\n"
    probe = {"type": "replicate", "epoch": 2, "covers": 1, "part": 0, "commits": {"k": 4}}
    part_of_1 = {"type": "replicate", "epoch": 2, "covers": 1, "part": 1}
    (tmp_path / "jepsen.log").write_text(
        send("57,600", "n0", "n2", {"type": "bundle", "msgs": [{"type": "leadership", "part": 0}, probe]})
        + "2026-12-07 06:41:57,700 INFO n2 started (pid 12) and answered init\n"
        + send("57,800", "n0", "n2", {**probe, "covers": 2})
        + send("57,850", "n0", "n2", part_of_1)  # another partition's
        + send("57,860", "n1", "n2", probe)  # another node's
        + send("57,870", "n0", "n2", {"type": "poll_ok", "msgs": {"k": [[0, 1]]}})  # a poll's reply
        + send("58,300", "n0", "n2", {**probe, "covers": 3}))  # after it was back in sync
    (tmp_path / "node-logs" / "n0.log").write_text(
        "2026-12-07 06:41:58,200 INFO kafka_node.replication: partition 0: lin-kv set leader=n0 epoch=2 isr=n0,n1,n2 "
        "elr= version=4\n")
    size = len(json.dumps(probe, separators=(",", ":")))
    assert scale.figures(tmp_path) == {"in_sync_s": 0.5, "bytes_to_it": 2 * size, "messages_to_it": 2,
                                       "largest_message": size}


def test_the_performance_table_has_the_rows_the_suite_measures(tmp_path):
    # make bench writes the table into docs/performance.md; this catches a row added, dropped
    # or renamed without the table having been measured again since.
    settings = suite.Settings.chosen(node="maelstrom-kafka", runner="maelstrom-kafka-test", trivial=["true"],
                                     naive=["true"], cache_dir=tmp_path, quick=False, seed_time_limit=None)
    expected = [(row.id, row.figure) for row in rows.table(suite.Outcome(settings))]
    assert table_figures((PROJECT_ROOT / "docs" / "performance.md").read_text()) == expected


def test_the_table_is_replaced_between_its_markers():
    text = f"intro\n{TABLE_START}\nold table\n{TABLE_END}\nafter\n"
    assert with_table(text, "| new |\n") == f"intro\n{TABLE_START}\n| new |\n{TABLE_END}\nafter\n"
    with pytest.raises(ValueError):
        with_table("no markers", "| new |\n")


def test_the_fsync_floor_times_real_fdatasyncs_of_a_real_file(tmp_path):
    """Row j is the median time of fdatasync calls themselves: with fdatasync failing (libfiu,
    in a child process) the measurement cannot be made, and its file is removed either way."""
    assert fsync.fsync_p50_ms(tmp_path, samples=20) > 0
    assert list(tmp_path.iterdir()) == [], "the file it synced is removed"
    measure = "import pathlib; from kafka_node.bench import fsync; print(fsync.fsync_p50_ms(pathlib.Path('.'), samples=5))"
    fiu_run = shutil.which("fiu-run")
    assert fiu_run, "fiu-run is not installed (Debian package fiu-utils; make test installs it)"
    for failing, measured in [("posix/io/sync/fdatasync", False), ("posix/io/sync/msync", True)]:
        done = subprocess.run([fiu_run, "-x", "-c", f"enable name={failing}", sys.executable, "-c", measure],
                              cwd=tmp_path, capture_output=True, timeout=60)
        assert (done.returncode == 0) is measured, (failing, done.stderr.decode())
        assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("results", "expected"), [
    ({"anomaly_types": [], "maelstrom": {"unseen_only_untracked_keys": False}}, []),
    ({"anomaly_types": ["unseen"], "maelstrom": {"unseen_only_untracked_keys": True}}, []),
    ({"anomaly_types": ["unseen"], "maelstrom": {"unseen_only_untracked_keys": False}}, ["unseen"]),
    ({"anomaly_types": ["unseen", "unasked-key"], "maelstrom": {"unseen_only_untracked_keys": True}}, ["unasked-key"]),
    ({"anomaly_types": ["lost-write", "unseen"], "maelstrom": {"unseen_only_untracked_keys": False}},
     ["lost-write", "unseen"]),
])
def test_a_run_of_our_node_is_judged_without_only_maelstroms_unseen_quirk(results, expected):
    assert suite.unexplained_anomalies(results) == expected


def test_overtaking_is_measured_on_the_runners_queues_beside_one_timer_per_message():
    constant = overtaking.measure("constant", 5, 500, seconds=0.5)
    assert constant.messages > 100 and constant.queued_fraction == constant.independent_fraction == 0
    exponential = overtaking.measure("exponential", 5, 500, seconds=1.0)
    assert 0 < exponential.queued_fraction <= exponential.independent_fraction  # equal only if all were queued together
    assert exponential.client_wait_mean_ms is not None and exponential.client_wait_mean_ms > 0.5
