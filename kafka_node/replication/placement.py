"""Where each key lives on several nodes: its partition, the partition's replicas and the replica
that leads it first; a rule every node computes alike from the node ids that init names."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass


def partition_of(key: str, partitions: int) -> int:
    """The partition of `key`: the same on every node and in every process, since CRC-32 of
    the key's UTF-8 bytes depends on nothing else."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % partitions


@dataclass(frozen=True)
class Placement:
    """One partition per node (partition i is first led by the i-th node in sorted order), each
    with `factor` replicas: that node and the next ones round the ring."""

    node_ids: Sequence[str]  # sorted
    factor: int
    min_insync: int

    @property
    def partitions(self) -> int:
        return len(self.node_ids)

    def partition(self, key: str) -> int:
        return partition_of(key, self.partitions)

    def holds(self, part: int, key: str) -> bool:
        """Whether `key` belongs to partition `part`."""
        return self.partition(key) == part

    def replicas(self, part: int) -> list[str]:
        n = len(self.node_ids)
        return [self.node_ids[(part + i) % n] for i in range(min(self.factor, n))]

    def parts_of(self, node_id: str) -> list[int]:
        """The partitions `node_id` holds a replica of."""
        return [part for part in range(self.partitions) if node_id in self.replicas(part)]


def kv_key(part: int) -> str:
    """The lin-kv key holding the partition's leadership."""
    return f"kafka-node/partition/{part}"
