"""The messages replicas trade: a leader's batches, a follower's answers, and news of a partition's
leadership; with the leadership's own shape, as lin-kv keeps it."""

from __future__ import annotations

from typing import get_args

import msgspec


class PartitionState(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A partition's leadership as lin-kv holds it: its leader (None: none now), the leader epoch,
    the in-sync set, the eligible leader replicas (out of the in-sync set, but holding every
    acknowledged write: after Kafka's KIP-966, the leader acknowledges nothing they lack until it
    gives them up), the file each eligible replica holds its log in, and a version that every
    change moves (a compare-and-set from the exact value read is how anything changes it)."""

    leader: str | None
    epoch: int
    isr: list[str]
    version: int
    elr: list[str] = []
    #: Each eligible replica's file id: a replica whose file is not that one lost what it held.
    #: An eligible replica without one (only before anything was acknowledged) may hold any file.
    files: dict[str, str] = {}

    @property
    def eligible(self) -> list[str]:
        """The replicas that hold every acknowledged write: the in-sync set, and past it the ELR."""
        return [*self.isr, *(node for node in self.elr if node not in self.isr)]

    def holds(self, node: str, file: str) -> bool:
        """Whether `node`, holding its log in `file`, is an eligible replica with its data."""
        return node in self.eligible and self.files.get(node, file) == file


class _Message(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=True):
    part: int


class Replicate(_Message, tag="replicate"):
    """A leader's batches (messages as [key, offset, seq, epoch, JSON text]) and committed offsets,
    following `prev` (seq, epoch) in its log; `covers` is the leader's commit number they bring
    the follower up to. `whole`: everything the partition holds past `prev` and the committed
    offsets the follower may lack, so the follower drops what it has past them. `sent`: the
    leader's clock when it sent this, echoed back, so that it knows when its followers last
    heard it (its read lease)."""

    epoch: int
    covers: int  # 0: part of a catch-up in several messages, which brings nothing up to any commit
    prev: tuple[int, int]
    after: int = 0  # the covers of the message sent to this follower before this one (a live batch)
    sends: list[tuple[str, int, int, int, msgspec.Raw]] = []
    commits: dict[str, int] = {}
    whole: bool = False
    sent: float = 0.0


class ReplicateOk(_Message, tag="replicate_ok"):
    """The follower holds, durably, the leader's log up to `covers`, in its file `file`; `sent`
    echoes the newest message of the leader's it has taken. For a part of a catch-up (covers 0),
    `through` is the last batch it brought: the follower holds the leader's log up to that batch
    (0: not said, as by a follower that predates it)."""

    epoch: int
    covers: int
    file: str = ""
    sent: float = 0.0
    through: int = 0


class ReplicateRefused(_Message, tag="replicate_refused"):
    """The follower did not apply a leader's message: its epoch is stale (`epoch` is the one
    the follower knows), or its log does not hold `prev`: the follower's batch `at` has epoch
    `at_epoch` (KIP-101's question: where did that epoch end in the leader's log?)."""

    epoch: int
    covers: int = 0  # the refused message's
    at: int = 0
    at_epoch: int = 0
    stale: bool = False
    file: str = ""
    sent: float = 0.0


class Leadership(_Message, tag="leadership"):
    """News that a partition's leadership changed in lin-kv, from the node that changed it."""

    state: PartitionState


ReplicaMessage = Replicate | ReplicateOk | ReplicateRefused | Leadership
REPLICA_MESSAGE_TYPES = get_args(ReplicaMessage)
