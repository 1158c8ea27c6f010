"""What commits not yet known to be durable wrote, so that reads never wait for their syncs: a
poll reads each key only below the first offset such a commit gave it; a listing waits for one."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping

#: Past this many keys with pending writes, every entry already durable is dropped at once.
_PRUNE_AT = 4096


class Unsynced:
    """Per key, the commits not yet durable that sent to it (each with the first offset it
    handed out) or moved its committed offset. Entries go once a sync covers them."""

    def __init__(self) -> None:
        self._sent: dict[str, deque[tuple[int, int]]] = {}  # key -> (commit, first offset)s, oldest first
        self._committed: dict[str, int] = {}  # key -> the newest commit that moved its committed offset
        self._newest = 0

    def record(self, commit: int, first_offsets: Mapping[str, int], committed: Iterable[str], durable: int) -> None:
        """Commit number `commit` sent to the keys of `first_offsets` (from those offsets on) and
        moved the committed offsets of `committed`; `durable` commits are dropped on the way,
        so that a key's entries are only those of commits still to be synced."""
        self._forgotten(durable)
        for key, offset in first_offsets.items():
            pending = self._sent.get(key)
            if pending is None:
                self._sent[key] = deque([(commit, offset)])
                continue
            _drop_synced(pending, durable)
            pending.append((commit, offset))
        for key in committed:
            self._committed[key] = commit
        self._newest = commit
        if len(self._sent) + len(self._committed) > _PRUNE_AT:
            self._prune(durable)

    def __len__(self) -> int:
        """How many entries it holds: at most one per key and commit not yet durable."""
        return sum(map(len, self._sent.values())) + len(self._committed)

    def poll_below(self, keys: Iterable[str], durable: int) -> dict[str, int]:
        """For each of `keys` that a commit not yet durable sent to, the first offset it gave:
        a poll reads below it, so that its reply need wait for no sync."""
        if self._forgotten(durable) or not self._sent:
            return {}
        below = {}
        for key in keys:
            pending = self._sent.get(key)
            if pending is None:
                continue
            _drop_synced(pending, durable)
            if pending:
                below[key] = pending[0][1]
            else:
                del self._sent[key]
        return below

    def listing_waits_for(self, keys: Iterable[str], durable: int) -> int:
        """The commit a listing of `keys` waits for: the newest not yet durable that moved
        one of their committed offsets (0: none)."""
        if self._forgotten(durable) or not self._committed:
            return 0
        needed = max((self._committed.get(key, 0) for key in keys), default=0)
        return needed if needed > durable else 0

    def _forgotten(self, durable: int) -> bool:
        """Whether nothing is pending any more (everything written is durable)."""
        if durable < self._newest:
            return False
        self._sent.clear()
        self._committed.clear()
        return True

    def _prune(self, durable: int) -> None:
        for key in list(self._sent):
            pending = self._sent[key]
            _drop_synced(pending, durable)
            if not pending:
                del self._sent[key]
        for key in [key for key, commit in self._committed.items() if commit <= durable]:
            del self._committed[key]


def _drop_synced(pending: deque[tuple[int, int]], durable: int) -> None:
    """Drop a key's oldest entries while a sync covers them."""
    while pending and pending[0][0] <= durable:
        pending.popleft()


class PartitionedUnsynced:
    """With replicas: the same, one per partition, each read below its partition's own floor,
    the newest commit both durable and held by the partition's in-sync set (`held_up_to`), so
    that one slow partition holds back no other's reads. Same calls as `Unsynced`."""

    def __init__(self, partition_of: Callable[[str], int], held_up_to: Callable[[int], int]) -> None:
        self.partition_of = partition_of
        self.held_up_to = held_up_to
        self._parts: dict[int, Unsynced] = {}

    def _floor(self, pid: int, durable: int) -> int:
        return min(durable, self.held_up_to(pid))

    def _by_partition(self, keys: Iterable[str]) -> dict[int, list[str]]:
        parts: dict[int, list[str]] = {}
        for key in keys:
            parts.setdefault(self.partition_of(key), []).append(key)
        return parts

    def record(self, commit: int, first_offsets: Mapping[str, int], committed: Iterable[str], durable: int) -> None:
        sent = self._by_partition(first_offsets)
        moved = self._by_partition(committed)
        for pid in sent.keys() | moved.keys():
            part = self._parts.setdefault(pid, Unsynced())
            part.record(commit, {key: first_offsets[key] for key in sent.get(pid, ())}, moved.get(pid, ()),
                        self._floor(pid, durable))

    def __len__(self) -> int:
        return sum(map(len, self._parts.values()))

    def poll_below(self, keys: Iterable[str], durable: int) -> dict[str, int]:
        below: dict[str, int] = {}
        for pid, part_keys in self._by_partition(keys).items():
            if (part := self._parts.get(pid)) is not None:
                below.update(part.poll_below(part_keys, self._floor(pid, durable)))
        return below

    def listing_waits_for(self, keys: Iterable[str], durable: int) -> int:
        return max((part.listing_waits_for(part_keys, self._floor(pid, durable))
                    for pid, part_keys in self._by_partition(keys).items()
                    if (part := self._parts.get(pid)) is not None), default=0)
