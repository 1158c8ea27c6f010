"""What the simulator checks after every event: what clients were told (no two messages at one offset,
none read that failed definitely, committed offsets never going back), what replicas hold (every
acknowledged or read message on every replica eligible to lead; logs alike below a shared batch),
one leader per partition and epoch, and every request answered in time by a node that stayed up."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kafka_node.replication.events import Entry
from kafka_node.wire.replica import PartitionState

from support.sim.memstore import MemStore


class Violation(AssertionError):
    """A rule broken: what, and when."""


@dataclass
class Ledger:
    """What clients were told, and what must therefore hold."""

    #: (key, offset) -> message: acknowledged by a send_ok or shown by a poll; never to be lost.
    settled: dict[tuple[str, int], Any] = field(default_factory=dict)
    #: per partition, the settled (key, offset)s in the order they were learned
    settled_order: dict[int, list[tuple[str, int]]] = field(default_factory=dict)
    #: (key, message) of sends that failed definitely: never to be read
    aborted: set[tuple[str, str]] = field(default_factory=set)
    #: sends acknowledged: (key, offset, message)
    acked: list[tuple[str, int, Any]] = field(default_factory=list)
    #: (key, offset)s some poll returned
    polled: set[tuple[str, int]] = field(default_factory=set)
    #: key -> the highest committed offset acknowledged, and when
    committed: dict[str, tuple[int, float]] = field(default_factory=dict)
    #: key -> the highest committed offset a listing returned, and when it returned
    listed: dict[str, tuple[int, float]] = field(default_factory=dict)


class Checks:
    """The invariants, kept incrementally so that checking after every event stays cheap."""

    def __init__(self, partition_of: Any) -> None:
        self.partition_of = partition_of
        self.ledger = Ledger()
        self.batches: dict[tuple[int, int, int], tuple[tuple[Entry, ...], int]] = {}  # (pid, seq, epoch) -> it, prev epoch
        self.leaders: dict[tuple[int, int], tuple[str, int]] = {}  # (pid, epoch) -> (node, incarnation)
        self._verified: dict[tuple[str, int], tuple[int, int, int, int]] = {}
        self._offset_of: dict[tuple[str, str], int] = {}
        self.polled = self.ledger.polled  # (key, message) -> its settled offset

    # --- what clients were told ---------------------------------------------------------------

    def settle(self, key: str, offset: int, msg: Any, how: str) -> None:
        """A message acknowledged at an offset, or read there: it is there for good."""
        known = self.ledger.settled.get((key, offset))
        if known is None:
            other_offset = self._offset_of.setdefault((key, repr(msg)), offset)
            if other_offset != offset:
                raise Violation(f"duplicate: {msg!r} of key {key} at offsets {other_offset} and {offset} ({how})")
            self.ledger.settled[(key, offset)] = msg
            self.ledger.settled_order.setdefault(self.partition_of(key), []).append((key, offset))
        elif known != msg:
            raise Violation(f"inconsistent offsets: key {key} offset {offset} holds {known!r} and {msg!r} ({how})")

    def send_ok(self, key: str, offset: int, msg: Any) -> None:
        self.ledger.acked.append((key, offset, msg))
        self.settle(key, offset, msg, "send_ok")

    def send_failed(self, key: str, msg: Any) -> None:
        self.ledger.aborted.add((key, repr(msg)))
        if (key, repr(msg)) in self._offset_of:
            raise Violation(f"aborted read: {msg!r} of key {key} was read or acknowledged, then its send failed definitely")

    def poll_ok(self, asked: dict[str, int], msgs: dict[str, list[list[Any]]]) -> None:
        for key, entries in msgs.items():
            if key not in asked:
                raise Violation(f"a poll returned key {key}, which it did not ask for")
            offsets = [offset for offset, _ in entries]
            if offsets and (offsets[0] < asked[key] or offsets != list(range(offsets[0], offsets[0] + len(offsets)))):
                raise Violation(f"a poll of key {key} from {asked[key]} returned offsets {offsets}")
            if offsets and offsets[0] > asked[key] and (key, asked[key]) in self.ledger.settled:
                raise Violation(f"poll skip: key {key} from {asked[key]} started at {offsets[0]}")
            for offset, msg in entries:
                if (key, repr(msg)) in self.ledger.aborted:
                    raise Violation(f"aborted read: a poll returned {msg!r} of key {key}, whose send failed definitely")
                self.settle(key, offset, msg, "poll")

    def commit_ok(self, offsets: dict[str, int], now: float) -> None:
        for key, offset in offsets.items():
            if offset > self.ledger.committed.get(key, (-1, 0.0))[0]:
                self.ledger.committed[key] = (offset, now)

    def listing_ok(self, offsets: dict[str, int], keys: Iterable[str], invoked: float, now: float) -> None:
        """A listing invoked at `invoked` must show every commit acknowledged before that, and
        every offset a listing that returned before then showed."""
        for key in keys:
            listed = offsets.get(key, -1)
            committed, when = self.ledger.committed.get(key, (-1, 0.0))
            if when < invoked and listed < committed:
                raise Violation(f"committed offset went back: key {key} listed {listed} after a commit of {committed} "
                                f"was acknowledged")
            seen, seen_when = self.ledger.listed.get(key, (-1, 0.0))
            if seen_when < invoked and listed < seen:
                raise Violation(f"committed offset went back: key {key} listed {listed} after a listing showed {seen}")
            if listed > seen:
                self.ledger.listed[key] = (listed, now)

    # --- what replicas hold -------------------------------------------------------------------

    def stored(self, store: MemStore, pid: int, entries: list[Entry]) -> None:
        """A replica (or a leader) stored batches: each matches every other copy of its
        (partition, seq, epoch), and follows a batch of the epoch every copy follows."""
        by_seq: dict[int, list[Entry]] = {}
        for entry in entries:
            by_seq.setdefault(entry.seq, []).append(entry)
        batches = store.state.batches[pid]
        for seq, batch in by_seq.items():
            epoch = batch[0].epoch
            prev = batches[seq - 2][0] if seq >= 2 else 0
            have = self.batches.get((pid, seq, epoch))
            whole = tuple(sorted(batch))  # a batch is always stored whole
            if have is None:
                self.batches[(pid, seq, epoch)] = (whole, prev)
            elif have[1] != prev:
                raise Violation(f"partition {pid}: batch {seq} of epoch {epoch} follows epoch {prev} on {store.file_id} "
                                f"but epoch {have[1]} elsewhere")
            elif whole != have[0]:
                raise Violation(f"partition {pid}: two batches {seq} of epoch {epoch} differ")

    def led(self, pid: int, epoch: int, node: str, incarnation: int) -> None:
        """`node` leads `pid` in `epoch`: no other node, nor another incarnation, ever does."""
        known = self.leaders.setdefault((pid, epoch), (node, incarnation))
        if known != (node, incarnation):
            raise Violation(f"two leaders of partition {pid} in epoch {epoch}: {known} and {(node, incarnation)}")

    def eligible_hold(self, pid: int, state: PartitionState, stores: dict[str, MemStore]) -> None:
        """Every replica lin-kv names eligible to lead, holding its file still, holds every
        message clients were told of, in what it made durable."""
        order = self.ledger.settled_order.get(pid, [])
        for node in state.eligible:
            store = stores.get(node)
            if store is None or state.files.get(node, store.file_id) != store.file_id:
                continue
            mark = (id(store), store.truncations, state.version)
            verified = self._verified.get((node, pid))
            start = verified[3] if verified is not None and verified[:3] == mark else 0
            keys = store.durable_state.keys
            for key, offset in order[start:]:
                log = keys.get(key)
                held = log[offset] if log is not None and offset < len(log) else None
                if held is None or _decode(held.msg) != self.ledger.settled[(key, offset)]:
                    raise Violation(f"partition {pid}: {node} (eligible per lin-kv version {state.version}) lacks "
                                    f"{self.ledger.settled[(key, offset)]!r} at key {key} offset {offset}, which clients "
                                    f"were told of; it holds {held and _decode(held.msg)!r}")
            self._verified[(node, pid)] = (*mark, len(order))


def _decode(text: str) -> Any:
    import msgspec

    return msgspec.json.decode(text)
