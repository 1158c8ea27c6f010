"""Running the node: flags, start-up log, where the log lives, signals, end of input."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import msgspec
import pytest

from kafka_node.storage import Durability, Storage

from support.logs import stored_messages
from support.messages import INIT, line
from support.node_child import child_env, run_node
from support.scripts import PROJECT_ROOT, installed_script


def send_line(key: str, value, msg_id: int) -> bytes:
    return line({"type": "send", "key": key, "msg": value, "msg_id": msg_id})


def test_every_flag_the_node_takes_is_explained_in_its_help_and_in_the_readme_with_its_default():
    done = subprocess.run([installed_script("maelstrom-kafka"), "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    usage, _, explained = done.stdout.partition("\noptions:\n")
    taken = set(re.findall(r"\[(--[a-z-]+)", usage))
    helps = dict(re.findall(r"^  (--[a-z-]+)([^\n]*\n(?:\s{20,}.*\n)*)", explained, flags=re.M))
    assert taken - {"--help"} <= set(helps), "a flag without its help text"
    readme = (PROJECT_ROOT / "README.md").read_text()
    table = readme.split("## Flags", 1)[1].split("\n## ", 1)[0]
    rows = [row.split(" | ") for row in table.splitlines() if row.startswith("| `--")]
    listed = {flag for cells in rows for flag in re.findall(r"`(--[a-z-]+)", cells[0])}
    assert listed == taken | {"--help"}, "the README's flags are not the flags the node takes"
    for cells in rows:
        flag, default = re.findall(r"`(--[a-z-]+)", cells[0])[0], cells[1].strip(" `|")
        if default:
            first_word = default.split()[0].strip("`,")
            assert first_word in " ".join(helps[flag].split()), (flag, default, helps[flag])


@pytest.mark.parametrize(("bad_flags", "named"), [(["--durability", "sometimes"], "--durability"),
                                                 (["--poll-max-per-key", "0"], "must be at least 1, got 0"),
                                                 (["--no-such-flag"], "--no-such-flag")])
def test_bad_flags_exit_2_naming_the_flag_and_open_no_file(bad_flags, named, tmp_path):
    done = run_node("--db", str(tmp_path / "log.db"), *bad_flags, env=child_env())
    assert done.returncode == 2
    assert named in done.stderr.decode()
    assert not (tmp_path / "log.db").exists()


def test_a_bad_durability_in_the_environment_exits_2_with_usage(tmp_path):
    done = run_node("--db", str(tmp_path / "log.db"), env=child_env(KAFKA_NODE_DURABILITY="FULL"))
    assert done.returncode == 2
    assert b"KAFKA_NODE_DURABILITY must be one of full, normal" in done.stderr
    assert b"Traceback" not in done.stderr


# full: COMMIT itself does not sync (NORMAL); the WAL syncer does, before any reply leaves.
@pytest.mark.parametrize(("mode", "synchronous", "syncer"), [("full", 1, True), ("normal", 1, False), ("off", 0, False)])
def test_start_up_logs_path_schema_version_and_durability_and_sets_it(tmp_path, mode, synchronous, syncer):
    db = tmp_path / "log.db"
    done = run_node("--db", str(db), "--durability", mode, "--log-level", "debug", env=child_env())
    assert done.returncode == 0
    assert re.search(rf"serving log {re.escape(str(db))} \(schema version \d+, durability {mode}\)", done.stderr.decode())
    storage = Storage.open(str(db), Durability(mode))  # the setting, as the node's storage applies it
    try:
        assert storage.conn.pragma("synchronous") == synchronous
        assert storage.syncs_after_commit is syncer
    finally:
        storage.close()


def test_a_restart_after_a_kill_recovers_the_wal_and_says_so_without_a_warning(start_node, tmp_path):
    node = start_node()
    for i in range(5):
        node.request({"type": "send", "key": "k", "msg": i})
    node.kill()  # the WAL is left behind, uncheckpointed
    restarted = start_node()
    assert restarted.request({"type": "poll", "offsets": {"k": 0}})["msgs"] == {"k": [[i, i] for i in range(5)]}
    log = restarted.stderr()
    assert re.search(r"INFO kafka_node.storage: SQLite \(SQLITE_NOTICE_RECOVER_WAL\): recovered \d+ frames", log), log
    assert "WARNING" not in log


def test_without_a_path_each_start_uses_a_fresh_logged_file(tmp_path):
    env = child_env(TMPDIR=str(tmp_path))  # the fresh files go where pytest cleans up
    starts = [run_node(stdin=INIT + send_line("k", "v", 2), env=env) for _ in range(2)]
    paths = []
    for done in starts:
        assert done.returncode == 0
        assert b'"offset":0' in done.stdout, "every fresh start must begin with an empty log"
        paths.append(re.search(r"serving log (\S+) ", done.stderr.decode())[1])
    assert paths[0] != paths[1]
    assert all(os.path.exists(p) and p.startswith(str(tmp_path)) for p in paths)


def test_the_installed_script_finds_its_schema_from_any_directory(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run_node("--db", "relative.db", stdin=INIT + send_line("k", "v", 2), env=child_env(), cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert b'"offset":0' in done.stdout
    assert f"serving log {elsewhere / 'relative.db'} ".encode() in done.stderr


def test_kafka_node_db_names_the_file_and_a_restart_continues_it(tmp_path):
    env = child_env(KAFKA_NODE_DB=str(tmp_path / "from-env.db"))
    first = run_node(stdin=INIT + send_line("k", "a", 2), env=env)
    second = run_node(stdin=INIT + send_line("k", "b", 2), env=env)
    assert b'"offset":0' in first.stdout and b'"offset":1' in second.stdout
    assert stored_messages(tmp_path / "from-env.db") == {("k", 0): "a", ("k", 1): "b"}


def test_end_of_input_commits_everything_and_exits_0(tmp_path):
    db = tmp_path / "log.db"
    lines = INIT + b"".join(send_line(str(i % 7), i, i + 10) for i in range(500))
    done = run_node("--db", str(db), stdin=lines.rstrip(b"\n"), env=child_env())  # last line lacks its newline
    assert done.returncode == 0
    assert len(done.stdout.splitlines()) == 501
    assert len(stored_messages(db)) == 500


def test_sigterm_while_idle_exits_0(start_node):
    node = start_node()
    node.request({"type": "send", "key": "k", "msg": 1})
    node.signal(signal.SIGTERM)
    assert node.proc.wait(10) == 0
    assert "stopping: signal" in node.stderr()


def test_sigterm_under_load_finishes_the_batch_in_hand_and_stores_exactly_what_was_acked(start_node, tmp_path):
    node = start_node()
    node.write(b"".join(send_line(str(i % 5), i, 1000 + i) for i in range(20_000)))
    time.sleep(0.05)
    node.signal(signal.SIGTERM)
    assert node.proc.wait(20) == 0
    acked = {}
    while (line := node.lines.get(timeout=5)) is not None:
        body = msgspec.json.decode(line)["body"]  # every line is complete JSON
        assert body["type"] == "send_ok"
        acked[(str((body["in_reply_to"] - 1000) % 5), body["offset"])] = body["in_reply_to"] - 1000
    assert acked, "the node stopped before answering anything"
    assert stored_messages(tmp_path / "log.db") == acked


def test_closed_stdout_ends_the_node_without_a_traceback(tmp_path):
    db = tmp_path / "log.db"
    stderr_path = tmp_path / "stderr"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen([installed_script("maelstrom-kafka"), "--db", str(db)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
        proc.stdin.write(INIT + send_line("k", "kept", 2))
        proc.stdin.flush()
        assert b"send_ok" in proc.stdout.readline() + proc.stdout.readline()
        proc.stdout.close()
        proc.stdin.write(send_line("k", "unanswerable", 3))
        proc.stdin.flush()
        status = proc.wait(10)
        proc.stdin.close()
    assert status == 1
    text = stderr_path.read_text()
    assert "stdout closed" in text and "Traceback" not in text
    assert stored_messages(db)[("k", 0)] == "kept"
