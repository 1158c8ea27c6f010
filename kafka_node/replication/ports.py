"""How replication reads and writes a node's log without knowing where it lives (etcd raft's
`Storage`): the file's identity, its batches and committed offsets, and one transaction of writes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from kafka_node.replication.events import Entry, PersistOp


class PartitionLog(Protocol):
    """What a partition's machine reads of the node's log."""

    @property
    def file_id(self) -> str:
        """The identity of the file the log is in, drawn when the file was made: a node that
        lost its file (its disk) has another."""
        ...

    @property
    def commits(self) -> int:
        """How many transactions the node has committed so far."""
        ...

    def epoch_ranges(self, pid: int) -> tuple[list[tuple[int, int]], int]:
        """The partition's (epoch, first seq) ranges, ascending, and its last batch's seq."""
        ...

    def batch(self, pid: int, seq: int) -> list[Entry]:
        """The messages of one batch, in key and offset order."""
        ...

    def batches_after(self, pid: int, seq: int, limit: int) -> list[Entry]:
        """Whole batches after `seq`, oldest first, stopping after the batch in which the
        `limit`-th message falls."""
        ...

    def committed_of(self, pid: int) -> dict[str, int]:
        """Every committed offset of the partition's keys."""
        ...

    def committed_offsets(self, keys: Iterable[str]) -> dict[str, int]:
        """The committed offset of each named key that has one."""
        ...


class ReplicaStore(PartitionLog, Protocol):
    """The log, and the one way replication writes to it."""

    def persist(self, ops: Sequence[PersistOp]) -> int:
        """Apply a follower's writes in one transaction; its commit number. Raises if the
        transaction failed (nothing of it was applied)."""
        ...
