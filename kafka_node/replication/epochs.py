"""A partition's log seen by batch, in memory: the epoch of each batch as (epoch, first seq) ranges
(Kafka's leader-epoch cache), kept in step with what the machine decides to persist."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

#: A batch's place in its partition's log: its sequence number and the leader epoch that wrote
#: it. (0, 0) is the empty log, which every replica holds.
EMPTY = (0, 0)


class EpochCache:
    """Batches are numbered densely from 1, and epochs never decrease along a log, so the epoch
    of every batch is given by where each epoch's batches start."""

    def __init__(self, ranges: Sequence[tuple[int, int]] = (), last_seq: int = 0) -> None:
        #: (epoch, first seq), both ascending; the last range runs to `last_seq`.
        self._epochs = [epoch for epoch, _ in ranges]
        self._starts = [start for _, start in ranges]
        self._last_seq = last_seq if ranges else 0

    @property
    def last(self) -> tuple[int, int]:
        """(seq, epoch) of the last batch; EMPTY if there is none."""
        return (self._last_seq, self._epochs[-1]) if self._last_seq else EMPTY

    @property
    def ranges(self) -> list[tuple[int, int]]:
        return list(zip(self._epochs, self._starts, strict=True))

    def epoch_of(self, seq: int) -> int | None:
        """The epoch of batch `seq` (0 for seq 0); None if the log does not reach it."""
        if seq == 0:
            return 0
        if seq < 0 or seq > self._last_seq:
            return None
        return self._epochs[bisect.bisect_right(self._starts, seq) - 1]

    def end_of_epoch(self, epoch: int) -> int:
        """The last batch written in `epoch` or before it (Kafka's end offset for a leader
        epoch, KIP-101): a replica whose log diverges from this one agrees with it up to there
        at most."""
        after = bisect.bisect_right(self._epochs, epoch)
        if after == len(self._epochs):
            return self._last_seq
        return self._starts[after] - 1

    def append(self, seq: int, epoch: int) -> None:
        """Batch `seq` of `epoch` follows the last one."""
        if seq != self._last_seq + 1:
            raise ValueError(f"batch {seq} does not follow batch {self._last_seq}")
        if not self._epochs or epoch != self._epochs[-1]:
            if self._epochs and epoch < self._epochs[-1]:
                raise ValueError(f"epoch {epoch} after epoch {self._epochs[-1]}")
            self._epochs.append(epoch)
            self._starts.append(seq)
        self._last_seq = seq

    def truncate_after(self, seq: int) -> None:
        """Forget every batch after `seq`."""
        if seq >= self._last_seq:
            return
        keep = bisect.bisect_right(self._starts, seq)
        del self._epochs[keep:]
        del self._starts[keep:]
        self._last_seq = max(seq, 0) if self._epochs else 0

    def copy(self) -> EpochCache:
        return EpochCache(self.ranges, self._last_seq)

    def restore(self, other: EpochCache) -> None:
        """Become what `other` holds, in place (whoever holds this one sees the change)."""
        self._epochs, self._starts, self._last_seq = list(other._epochs), list(other._starts), other._last_seq

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EpochCache) and self.ranges == other.ranges and self.last == other.last

    def __repr__(self) -> str:
        return f"EpochCache({self.ranges}, last={self.last})"
