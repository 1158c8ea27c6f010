"""Replication's port on a real SQLite file: a follower's writes in one transaction (a failed COMMIT
distrusts the file), and the epoch ranges a restarted replica rebuilds its cache from, by bisection."""

from __future__ import annotations

import tempfile
from pathlib import Path

import apsw
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from storage.test_faults import FaultyVFS

from kafka_node.replication.epochs import EpochCache
from kafka_node.replication.events import Append, Entry, MergeCommitted, TruncateAfter
from kafka_node.replication.placement import Placement
from kafka_node.replication.sqlite_store import SqliteStore
from kafka_node.storage import Storage

PLACEMENT = Placement(["n0", "n1", "n2"], 3, 2)


def _store(path: Path) -> tuple[Storage, SqliteStore]:
    storage = Storage.open(str(path))
    return storage, SqliteStore(storage, PLACEMENT)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.tuples(st.just("append"), st.integers(0, 2), st.integers(1, 3)),
                          st.tuples(st.just("truncate"), st.integers(0, 30))), max_size=25))
def test_epoch_ranges_read_back_from_the_file_are_the_cache_the_writes_made(steps):
    with tempfile.TemporaryDirectory() as directory:
        storage, store = _store(Path(directory) / "log.db")
        cache, offsets = EpochCache(), {}
        epoch = 1
        for step in steps:
            if step[0] == "append":
                epoch += step[1]
                seq = cache.last[0] + 1
                entries = []
                for n in range(step[2]):
                    key = f"k{n}"
                    entries.append(Entry(key, offsets.get(key, 0), seq, epoch, str(seq)))
                    offsets[key] = offsets.get(key, 0) + 1
                store.persist([Append(0, entries)])
                cache.append(seq, epoch)
            else:
                store.persist([TruncateAfter(0, step[1])])
                cache.truncate_after(step[1])
                offsets = {key: len(store.storage.log.conn.execute(
                    "SELECT 1 FROM messages WHERE key = ?", (key,)).fetchall()) for key in offsets}
        assert EpochCache(*store.epoch_ranges(0)) == cache
        storage.close()
        reopened, store = _store(Path(directory) / "log.db")  # as a restarted replica finds it
        assert EpochCache(*store.epoch_ranges(0)) == cache
        reopened.close()


def test_a_followers_writes_are_one_transaction_with_every_committed_offset_kept_at_its_highest(tmp_path):
    storage, store = _store(tmp_path / "log.db")
    before = storage.log.commits
    commit = store.persist([Append(1, [Entry("a", 0, 1, 1, "1"), Entry("a", 1, 1, 1, "2")]),
                            MergeCommitted({"a": 1}), MergeCommitted({"a": 0})])
    assert commit == before + 1
    assert store.batch(1, 1) == [Entry("a", 0, 1, 1, "1"), Entry("a", 1, 1, 1, "2")]
    assert store.committed_offsets(["a"]) == {"a": 1}
    storage.close()


def test_a_file_keeps_its_id_across_opens_and_another_file_has_another(tmp_path):
    ids = []
    for name in ("log.db", "log.db", "other.db"):
        storage, store = _store(tmp_path / name)
        ids.append(store.file_id)
        storage.close()
    assert ids[0] == ids[1] != ids[2] and len(ids[0]) == 16


def test_a_followers_transaction_whose_commit_fails_is_rolled_back_and_the_file_no_longer_trusted(tmp_path):
    vfs = FaultyVFS()
    storage = Storage.open(str(tmp_path / "log.db"), vfs=vfs.name)
    store = SqliteStore(storage, PLACEMENT)
    vfs.failing = "write"  # the WAL's frames, written at COMMIT
    with pytest.raises(apsw.IOError):
        store.persist([Append(1, [Entry("a", 0, 1, 1, "1")])])
    vfs.failing = None
    assert storage.untrusted, "the connection's view may not be the disk's: the node must stop"
    assert store.batch(1, 1) == []
    storage.close()


def test_a_run_of_appends_to_a_partition_is_stored_as_one_and_read_back_batch_by_batch(tmp_path):
    storage, store = _store(tmp_path / "log.db")
    first = [Entry("k", 0, 1, 1, '"a"'), Entry("m", 0, 1, 1, '"b"')]
    second = [Entry("k", 1, 2, 1, '"c"')]
    elsewhere = [Entry("x", 0, 1, 2, '"d"')]
    third = [Entry("k", 2, 3, 1, '"e"'), Entry("m", 1, 3, 1, '"f"')]
    store.persist([Append(0, first), Append(0, second), Append(1, elsewhere), Append(0, third), Append(0, [])])
    assert first == [Entry("k", 0, 1, 1, '"a"'), Entry("m", 0, 1, 1, '"b"')]  # what it was given is left as it was
    assert store.batches_after(0, 0, 10) == [*first, *second, *third]
    assert store.batches_after(1, 0, 10) == elsewhere
    assert EpochCache(*store.epoch_ranges(0)) == EpochCache([(1, 1)], 3)
    next_offsets = dict(storage.log.conn.execute("SELECT key, next_offset FROM log_keys"))
    assert next_offsets == {"k": 3, "m": 2, "x": 1}
    storage.close()
