"""What a leader's replies wait for beyond their own COMMIT (Kafka's produce purgatory): each commit
of client writes waits until every partition it wrote has it under its high watermark, or fails."""

from __future__ import annotations

from collections import deque

from kafka_node import errors, protocol
from kafka_node.outbox import Held


class AckLedger:
    """Commits waiting for their partitions' in-sync sets, the replies held for them, and the
    commits given up on: remembered for `failed_memory` at least (a part of a request answered
    late must not pass for held), and until every partition it wrote holds it or is led here no
    more (a listing waiting for it must not show what it wrote). A commit neither waiting nor
    given up on is held by every in-sync set.

    Amortised O(1) per commit: each waits in one queue per partition it wrote, oldest first."""

    def __init__(self, failed_memory: float) -> None:
        self.failed_memory = failed_memory
        self._waiting: dict[int, set[int]] = {}  # commit -> partitions not yet holding it
        self._deadlines: deque[tuple[float, int]] = deque()  # (deadline, commit), in commit order
        self._by_partition: dict[int, deque[int]] = {}  # partition -> its waiting commits, oldest first
        self._held: dict[int, list[Held]] = {}  # commit -> the replies waiting for it
        self._failed: dict[int, tuple[float, set[int]]] = {}  # commit -> when it was given up on, and where
        self._hw: dict[int, float] = {}  # partition -> its high watermark (infinite: led here no more)
        self._out: list[Held] = []

    def expect(self, commit: int, partitions: set[int], deadline: float) -> None:
        """`commit` wrote to `partitions`: its replies wait for each to hold it, until `deadline`."""
        if not partitions:
            return
        self._waiting[commit] = set(partitions)
        self._deadlines.append((deadline, commit))
        for pid in partitions:
            self._by_partition.setdefault(pid, deque()).append(commit)

    def advance(self, pid: int, hw: int) -> None:
        """Partition `pid` holds every commit up to `hw`."""
        self._hw[pid] = hw
        queue = self._by_partition.get(pid)
        while queue and queue[0] <= hw:
            commit = queue.popleft()
            waiting = self._waiting.get(commit)
            if waiting is None:
                continue  # given up on already
            waiting.discard(pid)
            if not waiting:
                del self._waiting[commit]
                self._out += self._held.pop(commit, [])

    def deposed(self, pid: int, now: float) -> None:
        """Partition `pid` is no longer led here: its waiting commits never will be held."""
        self._hw[pid] = float("inf")
        for commit in self._by_partition.pop(pid, deque()):
            self._fail(commit, now)

    def expire(self, now: float) -> None:
        """Give up on the commits waiting past their deadline; forget old failures."""
        while self._deadlines and self._deadlines[0][0] <= now:
            _, commit = self._deadlines.popleft()
            self._fail(commit, now)
        for commit in [c for c, (since, partitions) in self._failed.items()
                       if now - since > self.failed_memory and all(self._hw.get(p, 0) >= c for p in partitions)]:
            del self._failed[commit]

    def _fail(self, commit: int, now: float) -> None:
        partitions = self._waiting.pop(commit, None)
        if partitions is None:
            return
        self._failed[commit] = (now, partitions)
        self._out += [_unknown(entry) for entry in self._held.pop(commit, [])]

    def hold(self, held: list[Held]) -> list[Held]:
        """Keep the replies whose commit is still waiting; the others, which may leave now (an
        unknown outcome in place of those whose commit was given up on)."""
        out = []
        for entry in held:
            if entry.commit in self._waiting:
                self._held.setdefault(entry.commit, []).append(entry)
            elif entry.commit in self._failed:
                out.append(_unknown(entry))
            else:
                out.append(entry)
        return out

    def take(self) -> list[Held]:
        """The replies released (or failed) since last asked."""
        out, self._out = self._out, []
        return out

    def __len__(self) -> int:
        """How many commits wait."""
        return len(self._waiting)


def _unknown(entry: Held) -> Held:
    """An unknown outcome in place of a client's reply whose commit was given up on."""
    assert isinstance(entry.reply, protocol.Outgoing)  # the ledger holds clients' replies only
    return Held(errors.not_replicated(entry.reply), entry.commit)
