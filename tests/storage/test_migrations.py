"""Schema migrations, and refusal of files that are not ours, left byte-for-byte untouched."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import apsw
import pytest

from kafka_node import migrations
from kafka_node.storage import APPLICATION_ID, Storage, UnusableDatabase

from support.logs import digest
from support.messages import INIT, line
from support.node_child import child_env, run_node

SEND = line({"type": "send", "key": "k", "msg": "v", "msg_id": 2})


def schema_of(path: Path) -> list[tuple]:
    """The file's schema, without the statistics SQLite's query planner keeps (sqlite_stat*):
    opening runs PRAGMA optimize, which analyzes tables holding rows, as the file's identity
    does from the start."""
    conn = apsw.Connection(str(path))
    try:
        return conn.execute("SELECT type, name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_stat%' ORDER BY name"
                            ).fetchall()
    finally:
        conn.close()


def test_a_fresh_file_reaches_the_latest_version(tmp_path):
    storage = Storage.open(str(tmp_path / "log.db"))
    try:
        assert storage.schema_version == migrations.latest_version() >= 1
        assert storage.conn.pragma("user_version") == migrations.latest_version()
        assert storage.conn.pragma("application_id") == APPLICATION_ID
        assert storage.conn.pragma("journal_mode") == "wal"
    finally:
        storage.close()
    names = {name for _, name, _ in schema_of(tmp_path / "log.db")}
    assert {"messages", "log_keys", "key_log", "key_summary"} <= names


def test_migrations_are_numbered_without_gaps_and_ship_with_the_package():
    found = migrations.available()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert all(m.sql.strip() for m in found)


def test_reopening_an_up_to_date_file_changes_nothing(tmp_path):
    path = tmp_path / "log.db"
    Storage.open(str(path)).close()
    before = schema_of(path)
    storage = Storage.open(str(path))
    assert storage.schema_version == migrations.latest_version()
    storage.close()
    assert schema_of(path) == before


def test_the_installed_node_migrates_once_and_logs_it(tmp_path):
    db = str(tmp_path / "log.db")
    first = run_node("--db", db, env=child_env())
    second = run_node("--db", db, env=child_env())
    assert first.returncode == second.returncode == 0
    assert b"applied migration 001_initial" in first.stderr
    assert b"applied migration" not in second.stderr
    assert f"schema version {migrations.latest_version()}".encode() in second.stderr


def make_newer_schema(path: Path) -> None:
    Storage.open(str(path)).close()
    conn = apsw.Connection(str(path))
    conn.pragma("journal_mode", "delete")
    conn.pragma("user_version", migrations.latest_version() + 1)
    conn.close()


def make_newer_schema_with_wal_left_behind(path: Path) -> None:
    """A newer kafka-node killed mid-run: its last changes are still in the -wal file."""
    Storage.open(str(path)).close()
    conn = apsw.Connection(str(path))
    conn.config(apsw.SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1)
    conn.pragma("wal_autocheckpoint", 0)
    conn.pragma("user_version", migrations.latest_version() + 1)
    conn.execute("INSERT INTO messages (key, log_offset, msg) VALUES ('k', 0, '1')")
    conn.close()
    assert Path(f"{path}-wal").stat().st_size > 0


def make_foreign_database(path: Path) -> None:
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL); INSERT INTO invoices VALUES (1, 9.5)")
    conn.close()


def make_foreign_versioned_database(path: Path) -> None:
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.pragma("user_version", 1)
    conn.close()


def make_text_file(path: Path) -> None:
    path.write_text("this is a shopping list, not a database\n" * 100)


def make_truncated_header(path: Path) -> None:
    Storage.open(str(path)).close()
    path.write_bytes(path.read_bytes()[:50])


def make_truncated_mid_file(path: Path) -> None:
    """A log cut short after a clean close, as a failed copy or a full disk would leave it."""
    storage = Storage.open(str(path))
    with storage.log.transaction():
        storage.log.append_many([(str(i % 50), '"' + "x" * 500 + '"') for i in range(2000)])
    storage.close()
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - 4096 * 3])


def make_scrambled_header(path: Path) -> None:
    Storage.open(str(path)).close()
    data = bytearray(path.read_bytes())
    data[16:24] = b"\xff" * 8  # page size and format bytes
    path.write_bytes(bytes(data))


REFUSED_FILES = [
    (make_newer_schema, "newer than"),
    (make_newer_schema_with_wal_left_behind, "newer than"),
    (make_foreign_database, "another program"),
    (make_foreign_versioned_database, "another program"),
    (make_text_file, "not a readable SQLite database"),
    (make_truncated_header, "not a readable SQLite database"),
    (make_truncated_mid_file, "not a readable SQLite database"),
    (make_scrambled_header, "not a readable SQLite database"),
]


@pytest.mark.parametrize(("make_file", "reason"), REFUSED_FILES, ids=[f.__name__[5:] for f, _ in REFUSED_FILES])
def test_a_file_that_is_not_ours_is_refused_with_exit_2_and_left_untouched(tmp_path, make_file, reason):
    path = tmp_path / "other.db"
    make_file(path)
    wal = Path(f"{path}-wal")
    wal_before = digest(wal) if wal.exists() else None
    before = digest(path)
    done = run_node("--db", str(path), stdin=INIT, env=child_env())
    assert done.returncode == 2
    assert reason.encode() in done.stderr
    assert b"refusing to start" in done.stderr
    assert b"Traceback" not in done.stderr
    assert done.stdout == b""
    assert digest(path) == before
    assert (digest(wal) if wal.exists() else None) == wal_before, "the WAL must be neither replayed nor created"


@pytest.mark.parametrize("make_file", [make_newer_schema, make_foreign_database], ids=["newer", "foreign"])
def test_storage_refuses_before_writing(tmp_path, make_file):
    path = tmp_path / "other.db"
    make_file(path)
    before = digest(path)
    with pytest.raises(UnusableDatabase):
        Storage.open(str(path))
    assert digest(path) == before


def test_a_path_that_cannot_be_opened_is_refused_with_exit_2(tmp_path):
    done = run_node("--db", str(tmp_path / "no" / "such" / "dir" / "log.db"), env=child_env())
    assert done.returncode == 2
    assert b"cannot open" in done.stderr or b"not a readable" in done.stderr
    assert b"Traceback" not in done.stderr


#: A migration of the tests' own, bulky enough that its first statement's pages spill into
#: the WAL before its second statement runs.
BULKY_MIGRATION = """
INSERT INTO messages (key, log_offset, msg)
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 1999)
SELECT 'migrated', i, json_quote(printf('%.1000c', 'x')) FROM n;
INSERT INTO log_keys (key, next_offset) VALUES ('migrated', 2000);
"""

#: Run in a child: the real migration runner on a WAL file with a tiny page cache, killed
#: with SIGKILL just before the statement that contains `kill_before` runs.
KILL_MIDWAY = """
import os, signal, sys
import apsw
from kafka_node import migrations

path, kill_before, bulky = sys.argv[1], sys.argv[2], sys.argv[3]
conn = apsw.Connection(path)
conn.pragma("journal_mode", "wal")
conn.pragma("cache_size", 2)  # spill uncommitted pages into the WAL before the kill

def kill_at_marker(cursor, sql, bindings):
    if kill_before in sql:
        os.kill(os.getpid(), signal.SIGKILL)
    return True

conn.exec_trace = kill_at_marker
migrations.migrate(conn, [migrations.available()[0], migrations.Migration(2, "bulky", bulky)])
"""


@pytest.mark.parametrize(("kill_before", "version_left"), [
    ("CREATE TABLE messages", 0),  # inside 001, the real schema: its first table created, not committed
    ("INSERT INTO log_keys", 1),  # inside the bulky 002: 2,000 rows written to the WAL, not committed
], ids=["in-001", "in-002-after-its-pages-reached-the-wal"])
def test_a_migration_killed_halfway_through_the_runner_leaves_the_previous_version_and_no_trace(
        tmp_path, kill_before, version_left):
    path = tmp_path / "log.db"
    killed = subprocess.run([sys.executable, "-c", KILL_MIDWAY, str(path), kill_before, BULKY_MIGRATION],
                            cwd=tmp_path, capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if version_left == 1:
        assert Path(f"{path}-wal").stat().st_size > 100_000, "the half-done migration never reached the disk"
    conn = apsw.Connection(str(path))
    try:
        assert conn.pragma("user_version") == version_left, "the killed migration's version must not be recorded"
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
        assert tables == ({"log_keys", "messages"} if version_left else set()), tables
        if version_left:
            assert conn.execute("SELECT count(*) FROM messages").get == 0, "the killed migration's rows survived"
    finally:
        conn.close()
    done = run_node("--db", str(path), stdin=INIT + SEND, env=child_env())
    assert done.returncode == 0, done.stderr
    assert (b"applied migration 001_initial" in done.stderr) == (version_left == 0)
    assert b'"offset":0' in done.stdout


def test_a_file_at_an_older_version_gets_every_later_migration(tmp_path):
    """The runner skips the migrations a file already has and goes on to the later ones."""
    path = tmp_path / "log.db"
    Storage.open(str(path)).close()  # at the latest shipped version
    later = [migrations.Migration(migrations.latest_version() + 1, "later", "CREATE TABLE later_one (x);"),
             migrations.Migration(migrations.latest_version() + 2, "later_still", "CREATE TABLE later_two (x);")]
    conn = apsw.Connection(str(path))
    try:
        assert migrations.migrate(conn, [*migrations.available(), *later]) == migrations.latest_version() + 2
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
        assert {"later_one", "later_two"} <= tables
    finally:
        conn.close()
