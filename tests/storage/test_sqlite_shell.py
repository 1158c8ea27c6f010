"""The log as a person sees it: Debian's sqlite3 shell reading the views of a file the node wrote."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

SQLITE3 = shutil.which("sqlite3")
# Skipped on a machine without the shell, but never in CI, whose script installs it.
pytestmark = pytest.mark.skipif(SQLITE3 is None and not os.environ.get("CI"),
                                reason="the sqlite3 shell is not installed (CI installs it)")


def shell(db, sql: str) -> list[dict]:
    assert SQLITE3, "CI must install the sqlite3 shell"
    done = subprocess.run([SQLITE3, "-json", str(db), sql], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else []


@pytest.fixture
def written_log(start_node, tmp_path):
    """A node that wrote two keys and committed one of them, still running."""
    node = start_node()
    for value in [{"n": 1}, [2, "two"], None]:
        node.request({"type": "send", "key": "orders", "msg": value})
    node.request({"type": "send", "key": "ünï 🎉", "msg": "hello"})
    node.request({"type": "commit_offsets", "offsets": {"orders": 1}})
    return node, tmp_path / "log.db"


def test_the_shell_reads_a_keys_log_with_readable_messages_while_the_node_runs(written_log):
    node, db = written_log
    rows = shell(db, "SELECT key, log_offset, msg_type, msg FROM key_log WHERE key = 'orders' ORDER BY log_offset")
    assert rows == [
        {"key": "orders", "log_offset": 0, "msg_type": "object", "msg": '{"n":1}'},
        {"key": "orders", "log_offset": 1, "msg_type": "array", "msg": '[2,"two"]'},
        {"key": "orders", "log_offset": 2, "msg_type": "null", "msg": "null"},
    ]
    assert shell(db, "SELECT json_extract(msg, '$.n') AS n FROM key_log WHERE key = 'orders' AND log_offset = 0") == [{"n": 1}]
    assert node.alive()


def test_the_shell_summarises_each_key(written_log):
    _node, db = written_log
    rows = shell(db, "SELECT * FROM key_summary ORDER BY key")
    assert rows == [
        {"key": "orders", "messages": 3, "latest_offset": 2, "committed_offset": 1, "lag": 1},
        {"key": "ünï 🎉", "messages": 1, "latest_offset": 0, "committed_offset": None, "lag": 1},
    ]


def test_the_shell_finds_the_file_intact(written_log):
    node, db = written_log
    node.kill()
    assert shell(db, "PRAGMA integrity_check") == [{"integrity_check": "ok"}]
