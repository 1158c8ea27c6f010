"""Database files for the benchmark: synthetic logs built with the node's own storage layer (a lone
node's, or a partition leader's in replicated batches), the big ones cached, and copies for each run."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import apsw

from kafka_node.storage import PAGE_SIZE, Durability, Storage

#: The stored message of every synthetic log.
SYNTHETIC_MSG = '"12345"'


def build_log(path: Path, keys: int, messages_per_key: int) -> Path:
    """A log at `path` with keys "0".."keys-1", each holding `messages_per_key` messages."""
    storage = Storage.open(str(path), Durability.OFF)
    try:
        fill_synthetic(storage, keys, messages_per_key, SYNTHETIC_MSG)
    finally:
        storage.close()
    return path


def fill_synthetic(storage: Storage, keys: int, messages_per_key: int, msg: str) -> None:
    """Bulk-load keys "0".."keys-1", each with messages_per_key copies of `msg` (JSON text).

    Millions of rows in seconds, written by SQL straight into the node's tables (the node
    itself never needs this), in key order, one transaction per slice of keys so the WAL
    stays small.
    """
    slice_size = max(1, 1_000_000 // messages_per_key)
    for first in range(0, keys, slice_size):
        last = min(keys, first + slice_size)
        with storage.log.transaction():
            storage.conn.execute(
                """
                WITH RECURSIVE
                  numbers(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM numbers WHERE i + 1 < :last),
                  offsets(o) AS (SELECT 0 UNION ALL SELECT o + 1 FROM offsets WHERE o + 1 < :per_key),
                  new_keys(key) AS (SELECT CAST(i AS TEXT) FROM numbers ORDER BY 1)
                INSERT INTO messages (key, log_offset, msg)
                SELECT key, o, :msg FROM new_keys CROSS JOIN offsets
                """,
                {"first": first, "last": last, "per_key": messages_per_key, "msg": msg},
            )
            storage.conn.execute(
                """
                WITH RECURSIVE numbers(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM numbers WHERE i + 1 < :last)
                INSERT INTO log_keys (key, next_offset) SELECT CAST(i AS TEXT), :per_key FROM numbers WHERE true
                ON CONFLICT (key) DO UPDATE SET next_offset = excluded.next_offset
                """,
                {"first": first, "last": last, "per_key": messages_per_key},
            )
        storage.conn.pragma("wal_checkpoint", "TRUNCATE")


def build_partition_log(path: Path, keys: list[str], messages_per_key: int, per_batch: int, at_a_time: int,
                        part: int = 0, epoch: int = 1) -> Path:
    """A leader's log at `path`: `messages_per_key` messages of each key (all of partition `part`),
    stamped as the batches of epoch `epoch` that replicas trade.

    The keys are written `at_a_time` at once, round-robin, until each has all its messages, then
    the next ones (as the seed's workload writes: a few active keys, each retired once written
    enough); message n of that order is in batch n // per_batch + 1, so batches are numbered densely
    from 1. Built by SQL straight into the node's tables, in one transaction, in key order.
    """
    if len(keys) % at_a_time:
        raise ValueError(f"{len(keys)} keys are not groups of {at_a_time}")
    storage = Storage.open(str(path), Durability.OFF)
    try:
        with storage.log.transaction():
            storage.conn.execute(
                """
                WITH RECURSIVE offsets(o) AS (SELECT 0 UNION ALL SELECT o + 1 FROM offsets WHERE o + 1 < :per_key)
                INSERT INTO messages (key, log_offset, msg, part, seq, epoch)
                SELECT keys.value, o, :msg, :part,
                       ((keys.key / :at_a_time) * :at_a_time * :per_key + o * :at_a_time + keys.key % :at_a_time)
                         / :per_batch + 1,
                       :epoch
                FROM json_each(:keys) AS keys CROSS JOIN offsets
                """,
                {"keys": json.dumps(sorted(keys)), "per_key": messages_per_key, "at_a_time": at_a_time,
                 "per_batch": per_batch, "part": part, "epoch": epoch, "msg": SYNTHETIC_MSG},
            )
            storage.conn.execute(
                "INSERT INTO log_keys (key, next_offset) SELECT value, :per_key FROM json_each(:keys) WHERE true",
                {"keys": json.dumps(keys), "per_key": messages_per_key},
            )
    finally:
        storage.close()  # checkpointed, no WAL left: the file alone is the log
    return path


def replica_copy(source: Path, target: Path) -> Path:
    """A copy of a (checkpointed) replica's file at `target`, as another replica's: the same log,
    in a file with an identity of its own (a replica's answers name its file)."""
    shutil.copyfile(source, target)
    conn = apsw.Connection(str(target))
    try:
        conn.execute("UPDATE file_identity SET file_id = lower(hex(randomblob(8)))")
    finally:
        conn.close()
    return target


def empty_log(path: Path) -> Path:
    """A log at `path` with the current schema and no message."""
    Storage.open(str(path), Durability.OFF).close()
    return path


def cached_log(cache_dir: Path, keys: int, messages_per_key: int) -> Path:
    """The synthetic log of this size kept in `cache_dir`, built on first use.

    A cached file is opened once by the storage layer, so a schema migration added since it
    was built is applied to it, not timed at each start of the node.
    """
    path = cache_dir / f"log-{keys}x{messages_per_key}-{PAGE_SIZE}.db"  # rebuilt when the page size changes
    return cached(path, lambda target: build_log(target, keys, messages_per_key))


def cached_partition_log(cache_dir: Path, keys: list[str], messages_per_key: int, per_batch: int,
                         at_a_time: int) -> Path:
    """The leader's log of `build_partition_log` kept in `cache_dir`, built on first use (as `cached_log`)."""
    name = f"partition-{len(keys)}x{messages_per_key}-by-{per_batch}-{at_a_time}-at-a-time-{PAGE_SIZE}.db"
    return cached(cache_dir / name, lambda target: build_partition_log(target, keys, messages_per_key, per_batch,
                                                                     at_a_time))


def cached(path: Path, build: Callable[[Path], Path]) -> Path:
    """The file at `path`, built on first use by `build` (given where to build it, beside `path`,
    and moved there once whole, so that an interrupted build leaves nothing behind). A cached file
    is opened by the storage layer each time, so that a schema migration added since it was built
    is applied here, not timed at a node's start."""
    if path.exists():
        return empty_log(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix="building-", dir=path.parent))
    try:
        os.replace(build(building / path.name), path)
    finally:
        shutil.rmtree(building)
    return path


def copy_log(source: Path, directory: Path) -> Path:
    """A copy of a (checkpointed) log file in `directory`, for a run that writes to it."""
    target = directory / source.name
    shutil.copyfile(source, target)
    return target
