"""A node's log in memory for the simulator (the replication port's twin of the SQLite file, as etcd's
MemoryStorage): batches per partition, keys' logs, committed offsets, and what is durable."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from kafka_node.replication.events import Append, Entry, MergeCommitted, PersistOp, TruncateAfter


@dataclass
class LogState:
    """What a log holds: each partition's batches, oldest first (batch seq s at index s-1), each
    key's messages by offset, and committed offsets."""

    batches: dict[int, list[tuple[int, list[Entry]]]] = field(default_factory=dict)  # pid -> [(epoch, entries)]
    keys: dict[str, list[Entry]] = field(default_factory=dict)  # key -> its entries, offset = index
    committed: dict[str, int] = field(default_factory=dict)

    def append(self, pid: int, entries: Sequence[Entry]) -> None:
        batches = self.batches.setdefault(pid, [])
        for entry in entries:
            if entry.seq == len(batches) + 1:
                batches.append((entry.epoch, []))
            if entry.seq != len(batches) or batches[-1][0] != entry.epoch:
                raise AssertionError(f"partition {pid}: batch {entry.seq} of epoch {entry.epoch} does not follow "
                                     f"batch {len(batches)}")
            log = self.keys.setdefault(entry.key, [])
            if entry.offset != len(log):
                raise AssertionError(f"key {entry.key}: offset {entry.offset} does not follow {len(log) - 1}")
            batches[-1][1].append(entry)
            log.append(entry)

    def truncate_after(self, pid: int, seq: int) -> list[Entry]:
        """Drop the partition's batches after `seq`; what was dropped."""
        batches = self.batches.get(pid, [])
        dropped = [entry for _, entries in batches[seq:] for entry in entries]
        del batches[seq:]
        for entry in reversed(dropped):
            log = self.keys[entry.key]
            assert log[-1] == entry
            log.pop()
        return dropped

    def merge_committed(self, offsets: dict[str, int]) -> None:
        for key, offset in offsets.items():
            self.committed[key] = max(self.committed.get(key, -1), offset)

    def apply(self, op: PersistOp) -> None:
        if isinstance(op, Append):
            self.append(op.pid, op.entries)
        elif isinstance(op, TruncateAfter):
            self.truncate_after(op.pid, op.seq)
        elif isinstance(op, MergeCommitted):
            self.merge_committed(op.offsets)


class MemStore:
    """One node's log: what it holds now, and what a sync has made durable (a power cut, or a
    SIGKILL in this model, keeps only that). Commits are numbered as the SQLite log numbers them."""

    def __init__(self, file_id: str, partition_of: Callable[[str], int],
                 on_append: Callable[[MemStore, int, list[Entry]], None] | None = None,
                 on_loss: Callable[[], None] | None = None) -> None:
        self.file_id = file_id
        self.partition_of = partition_of
        self.on_append = on_append  # the simulator's check of every batch a replica stores
        self.on_loss = on_loss  # told whenever what it holds shrinks
        self.state = LogState()
        self.durable_state = LogState()
        self.commits = 1  # as a fresh SQLite log: its migrations are commit 1, durable
        self.durable = 1
        self._unsynced: list[tuple[int, PersistOp]] = []  # (commit, op) not yet durable
        self.truncations = 0  # bumped whenever what it holds shrinks (truncation, lost commits)

    # --- the replication port ---------------------------------------------------------------

    def epoch_ranges(self, pid: int) -> tuple[list[tuple[int, int]], int]:
        ranges: list[tuple[int, int]] = []
        batches = self.state.batches.get(pid, [])
        for seq, (epoch, _) in enumerate(batches, start=1):
            if not ranges or ranges[-1][0] != epoch:
                ranges.append((epoch, seq))
        return ranges, len(batches)

    def batch(self, pid: int, seq: int) -> list[Entry]:
        batches = self.state.batches.get(pid, [])
        return sorted(batches[seq - 1][1]) if 0 < seq <= len(batches) else []

    def batches_after(self, pid: int, seq: int, limit: int) -> list[Entry]:
        out: list[Entry] = []
        for _, entries in self.state.batches.get(pid, [])[seq:]:
            out += sorted(entries)
            if len(out) >= limit:
                break
        return out

    def committed_of(self, pid: int) -> dict[str, int]:
        return {key: offset for key, offset in self.state.committed.items() if self.partition_of(key) == pid}

    def committed_offsets(self, keys: Iterable[str]) -> dict[str, int]:
        committed = self.state.committed
        return {key: committed[key] for key in keys if key in committed}

    def persist(self, ops: Sequence[PersistOp]) -> int:
        for op in ops:
            if isinstance(op, TruncateAfter) and len(self.state.batches.get(op.pid, [])) > op.seq:
                self._lose()
            self.state.apply(op)
            if isinstance(op, Append) and self.on_append is not None:
                self.on_append(self, op.pid, op.entries)
        return self._commit(ops)

    # --- a leader's writes (what batch.apply does on SQLite) ------------------------------------

    def next_offset(self, key: str) -> int:
        return len(self.state.keys.get(key, ()))

    def write(self, appends: dict[int, list[Entry]], committed: dict[str, int]) -> int:
        """One transaction of client writes: each partition's new batch, committed offsets."""
        ops: list[PersistOp] = [Append(pid, entries) for pid, entries in appends.items() if entries]
        if committed:
            ops.append(MergeCommitted(committed))
        for op in ops:
            self.state.apply(op)
            if isinstance(op, Append) and self.on_append is not None:
                self.on_append(self, op.pid, op.entries)
        return self._commit(ops)

    def _commit(self, ops: Sequence[PersistOp]) -> int:
        self.commits += 1
        self._unsynced += [(self.commits, op) for op in ops]
        return self.commits

    def _lose(self) -> None:
        self.truncations += 1
        if self.on_loss is not None:
            self.on_loss()

    def read(self, key: str, offset: int, limit: int) -> list[Entry]:
        return self.state.keys.get(key, [])[max(0, offset):max(0, offset) + limit]

    # --- durability --------------------------------------------------------------------------

    def sync(self, upto: int) -> None:
        """A sync that began when commit `upto` was the last: everything up to it is durable."""
        if upto <= self.durable:
            return
        keep = []
        for commit, op in self._unsynced:
            if commit <= upto:
                self.durable_state.apply(op)
            else:
                keep.append((commit, op))
        self._unsynced = keep
        self.durable = upto

    def crash(self) -> None:
        """The process dies with the machine: what no sync made durable is gone. The next
        process numbers its commits anew, as a reopened SQLite log does (all it holds durable)."""
        if self._unsynced:
            self._lose()
        self.state = copy.deepcopy(self.durable_state)
        self._unsynced = []
        self.commits = self.durable = 1
