"""Replication's port on the node's SQLite file: its batches and committed offsets read through
`storage.replica` and `storage.log`, and a follower's writes applied in one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kafka_node.replication.events import Append, Entry, MergeCommitted, PersistOp, TruncateAfter
from kafka_node.replication.placement import Placement
from kafka_node.storage import Storage


class SqliteStore:
    """The node's open log, as replication reads and writes it."""

    def __init__(self, storage: Storage, placement: Placement) -> None:
        self.storage = storage
        self.placement = placement
        self._file_id = storage.replica.file_id()

    @property
    def file_id(self) -> str:
        return self._file_id

    @property
    def commits(self) -> int:
        return self.storage.log.commits

    def epoch_ranges(self, pid: int) -> tuple[list[tuple[int, int]], int]:
        return self.storage.replica.epoch_ranges(pid)

    def batch(self, pid: int, seq: int) -> list[Entry]:
        return [Entry(*row) for row in self.storage.replica.batch(pid, seq)]

    def batches_after(self, pid: int, seq: int, limit: int) -> list[Entry]:
        return [tuple.__new__(Entry, row) for row in self.storage.replica.batches_after(pid, seq, limit)]

    def committed_of(self, pid: int) -> dict[str, int]:
        placement = self.placement
        return self.storage.replica.committed_in(lambda key: placement.partition(key) == pid)

    def committed_offsets(self, keys: Iterable[str]) -> dict[str, int]:
        return self.storage.log.committed_offsets(keys)

    def persist(self, ops: Sequence[PersistOp]) -> int:
        """The writes in one transaction; its commit number. Raises if it failed, rolled back
        (`Storage.commit` distrusts the file after an I/O error at COMMIT, as for a client's batch)."""
        log, replica = self.storage.log, self.storage.replica
        log.begin()
        try:
            for op in _appends_joined(ops):
                if isinstance(op, Append):
                    replica.append(op.pid, op.entries)
                elif isinstance(op, TruncateAfter):
                    replica.truncate_after(op.pid, op.seq)
                elif isinstance(op, MergeCommitted):
                    log.commit_offsets(op.offsets)
        except BaseException:
            log.rollback()
            raise
        return self.storage.commit()


def _appends_joined(ops: Sequence[PersistOp]) -> list[PersistOp]:
    """The same writes, each run of appends to one partition as one: a catch-up brings thousands of
    batches, and each append costs statements of its own."""
    joined: list[PersistOp] = []
    run: list[Entry] | None = None  # the entries of the last op, an append
    for op in ops:
        last = joined[-1] if joined else None
        if isinstance(op, Append) and run is not None and isinstance(last, Append) and last.pid == op.pid:
            run += op.entries
        elif isinstance(op, Append):
            run = list(op.entries)
            joined.append(Append(op.pid, run))
        else:
            run = None
            joined.append(op)
    return joined
