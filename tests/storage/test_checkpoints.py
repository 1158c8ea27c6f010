"""Checkpoints: the WAL is copied back into the database file while the node runs, and stays
within the bound the docs state however long the commits go on."""

from __future__ import annotations

import logging
import subprocess
import time

import apsw
import msgspec

from kafka_node.storage import Durability, Storage

from support.scripts import PROJECT_ROOT, installed_script


def test_the_wal_is_checkpointed_into_the_file_while_the_node_runs(start_node, tmp_path):
    node = start_node()
    db = tmp_path / "log.db"
    size_before = db.stat().st_size
    payload = "x" * 20_000
    for i in range(400):  # about 8 MB: several times the checkpoint threshold of the WAL
        node.request({"type": "send", "key": str(i % 10), "msg": payload})
    deadline = time.monotonic() + 10
    while db.stat().st_size < size_before + 4_000_000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert db.stat().st_size >= size_before + 4_000_000, "the WAL was never copied into the database file"
    assert node.alive()


#: The WAL bound docs/design.md states ("Checkpoints"): 8,192 pages of 1 KiB with their frame
#: headers (8.6 MB), plus the pages of the one batch that crossed that mark.
WAL_BOUND_MB = 9


def test_the_wal_stays_within_the_stated_bound_under_a_constant_stream_of_commits_without_lock_warnings(tmp_path):
    """SQLite restarts only a completely checkpointed WAL: under nonstop commits the writer
    must let the checkpointer catch up, or the WAL grows by megabytes a second; and a single
    checkpointer never meets another one holding SQLite's checkpoint lock."""
    design = (PROJECT_ROOT / "docs" / "design.md").read_text()
    assert f"below {WAL_BOUND_MB} MB" in design, "docs/design.md must state the bound this test checks"
    db = tmp_path / "log.db"
    wal = tmp_path / "log.db-wal"
    node_log = tmp_path / "node.log"
    load = subprocess.Popen(
        [installed_script("maelstrom-kafka-bench"), "load", "--in-flight", "64", "--keys", "100",
         "--duration", "6", "--warmup", "0", "--db", str(db), "--node-log", str(node_log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    largest = 0
    while load.poll() is None:
        if wal.exists():
            largest = max(largest, wal.stat().st_size)
        time.sleep(0.01)
    assert load.returncode == 0
    assert largest > 3_000_000, f"the load wrote only {largest / 1e6:.1f} MB to the WAL: it proves nothing"
    assert largest < WAL_BOUND_MB * 1e6, f"the WAL grew to {largest / 1e6:.1f} MB"
    log = node_log.read_text()
    assert "WARNING" not in log, log


def commit_pages(storage: Storage, commits: int, start: int = 0) -> None:
    """Commits as the node makes them, each of a few pages, with the WAL's bound between them."""
    for i in range(start, start + commits):
        with storage.log.transaction():
            storage.log.append_many([(str(i % 50), msgspec.json.encode("x" * 900).decode())])
        storage.bound_wal()


def test_the_checkpointer_runs_once_per_checkpoint_pages_of_wal_growth_not_after_every_commit(tmp_path):
    storage = Storage.open(str(tmp_path / "log.db"), Durability.NORMAL)
    try:
        commit_pages(storage, 3_000)  # about 3 pages each: two or three times CHECKPOINT_PAGES
        deadline = time.monotonic() + 10
        while storage.checkpointer.checkpoints == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert 1 <= storage.checkpointer.checkpoints <= 30, storage.checkpointer.checkpoints
    finally:
        storage.close()


def test_a_reader_keeping_an_old_snapshot_holds_the_writer_back_once_for_the_catch_up_timeout(tmp_path, caplog):
    """A complete checkpoint cannot pass a reader's snapshot: the writer waits for it once,
    then carries on until the WAL has grown by its limit again; once the reader is gone, the
    next catch-up completes and the WAL starts again from its beginning."""
    path = str(tmp_path / "log.db")
    storage = Storage.open(path, Durability.NORMAL)
    storage.checkpointer.catch_up_timeout_s = 0.3
    reader = apsw.Connection(path)
    caplog.set_level(logging.WARNING, logger="kafka_node.storage")
    timeouts = [r for r in caplog.records if "no checkpoint completed" in r.getMessage()]
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM messages").get  # noqa: B018  # the snapshot is taken
        commits = 0
        while not (timeouts := [r for r in caplog.records if "no checkpoint completed" in r.getMessage()]):
            commit_pages(storage, 100, commits)
            commits += 100
            assert commits < 20_000, "the WAL never reached its limit"
        commit_pages(storage, 1_000, commits)  # about 3,000 pages: less than the limit again
        commits += 1_000
        assert len([r for r in caplog.records if "no checkpoint completed" in r.getMessage()]) == 1
        reader.execute("COMMIT")
        largest = storage.checkpointer.wal_pages
        for _ in range(200):
            commit_pages(storage, 100, commits)
            commits += 100
            if storage.checkpointer.wal_pages < largest:
                break
        assert storage.checkpointer.wal_pages < largest, "the WAL never started again from its beginning"
        assert len([r for r in caplog.records if "no checkpoint completed" in r.getMessage()]) == 1
    finally:
        reader.close()
        storage.close()
    assert timeouts


def test_nothing_is_checkpointed_once_the_file_is_untrusted(tmp_path):
    """After a failed COMMIT or sync, the WAL may hold what is not on disk as the connection
    believes: the checkpointer, though woken, copies nothing more into the database file."""
    db = tmp_path / "log.db"
    storage = Storage.open(str(db), Durability.NORMAL)
    storage.checkpointer.catch_up_timeout_s = 0.3  # the writer's catch-up cannot complete either
    try:
        storage.distrust()
        size_before = db.stat().st_size
        commit_pages(storage, 3_000)  # past the checkpoint mark, which wakes the checkpointer
        time.sleep(0.5)
        assert storage.checkpointer.checkpoints == 0
        assert db.stat().st_size == size_before
    finally:
        storage.close()
