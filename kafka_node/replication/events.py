"""What goes into a partition's state machine (events, each carrying the time it happens at) and what
comes out of it (a `Ready`: what to persist, send, ask lin-kv and release), as plain values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from kafka_node.wire import Sent
from kafka_node.wire.replica import PartitionState, Replicate, ReplicateOk, ReplicateRefused


class Entry(NamedTuple):
    """One replicated message: its key and offset, its batch and epoch, its JSON text."""

    key: str
    offset: int
    seq: int
    epoch: int
    msg: str


# --- what a follower persists: one transaction with every other partition's ------------------

class Append(NamedTuple):
    """Store a leader's messages at the offsets it gave them (they follow the log's last batch)."""

    pid: int
    entries: list[Entry]


class TruncateAfter(NamedTuple):
    """Delete every batch of the partition after `seq`."""

    pid: int
    seq: int


class MergeCommitted(NamedTuple):
    """Record committed offsets (a key's never moves backwards)."""

    offsets: dict[str, int]


PersistOp = Append | TruncateAfter | MergeCommitted


# --- calls to lin-kv ---------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class KvCall:
    """A read of the partition's state (`to` is None), or a compare-and-set from `from_` (None:
    the key does not exist yet) to `to`. Compared by identity: each call is one request. An
    `optional` read is one nothing waits for: any other call takes its place, and unanswered it
    is not read again at once, nor taken as lin-kv out of reach."""

    pid: int
    from_: PartitionState | None = None
    to: PartitionState | None = None
    optional: bool = False

    @property
    def is_cas(self) -> bool:
        return self.to is not None


# --- events ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tick:
    """Time passes. `heard_until`: the time up to which the node has read its input, so that
    silence is counted only over time it was listening (a node busy or paused for a while
    reads what came meanwhile before it decides anyone was silent)."""

    now: float
    heard_until: float


@dataclass(frozen=True)
class Told:
    """Another node says what it set in lin-kv."""

    state: PartitionState
    now: float


@dataclass(frozen=True)
class KvAnswered:
    """lin-kv answered `call`: the state read (None with error 20: there is none), or for a
    compare-and-set, applied (error None) or refused (its code)."""

    call: KvCall
    state: PartitionState | None
    error: int | None
    now: float


@dataclass(frozen=True)
class KvExpired:
    """`call` went unanswered past its deadline: its outcome is unknown."""

    call: KvCall
    now: float


@dataclass(frozen=True)
class FromLeader:
    src: str
    message: Replicate
    now: float


@dataclass(frozen=True)
class FromFollower:
    src: str
    message: ReplicateOk | ReplicateRefused
    now: float


@dataclass(frozen=True)
class Wrote:
    """This leader's commit `commit` wrote to the partition: a batch of sends (`batch`), and the
    committed offsets it moved (their new values)."""

    commit: int
    batch: bool
    committed: dict[str, int]
    now: float


Event = Tick | Told | KvAnswered | KvExpired | FromLeader | FromFollower | Wrote


# --- what comes out ----------------------------------------------------------------------------

@dataclass
class Ready:
    """What one machine's steps gave since it was last asked."""

    #: Messages to send at once: batches, heartbeats, probes, catch-ups, leadership news.
    send: list[Sent] = field(default_factory=list)
    #: A follower's writes: one transaction (with every other partition's), then `answers`.
    persist: list[PersistOp] = field(default_factory=list)
    #: A follower's answers, sent once the transaction holding `persist` is durable.
    answers: list[Sent] = field(default_factory=list)
    #: Calls to make to lin-kv.
    kv: list[KvCall] = field(default_factory=list)
    #: A led partition's new high watermark: the newest of this leader's commits that every
    #: replica waited on holds (None: unchanged).
    hw: int | None = None
    #: This replica stopped leading: what waited for its in-sync set never will.
    deposed: bool = False
    #: The newest state of the partition learned.
    learned: PartitionState | None = None
    #: Who this replica now knows leads the partition, and in which epoch, if that changed.
    led: tuple[str | None, int] | None = None

    def __bool__(self) -> bool:
        return bool(self.send or self.persist or self.answers or self.kv or self.hw is not None or self.deposed
                    or self.learned is not None or self.led is not None)
