"""The messages replicas trade (a leader's batches, a follower's answers, news of a partition's
leadership) and what goes to and comes from Maelstrom's lin-kv service, as declared types."""

from __future__ import annotations

from typing import get_args

import msgspec

#: Maelstrom's lin-kv service, where each partition's leadership lives.
LIN_KV = "lin-kv"


class PartitionState(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A partition's leadership as lin-kv holds it: its leader (None: no replica may lead), the
    leader epoch, the in-sync set, and a version that every change moves (a compare-and-set
    from the exact value read is how anything changes it)."""

    leader: str | None
    epoch: int
    isr: list[str]
    version: int

    def changed(self, leader: str | None, isr: list[str], new_epoch: bool) -> PartitionState:
        return PartitionState(leader, self.epoch + 1 if new_epoch else self.epoch, sorted(isr), self.version + 1)


class _Message(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=True):
    part: int


class Replicate(_Message, tag="replicate"):
    """A leader's batches (messages as [key, offset, seq, epoch, JSON text]) and committed offsets,
    following `prev` (seq, epoch) in its log; `covers` is the leader's commit number they bring
    the follower up to. `whole`: read from the leader's file, everything the partition holds
    past `prev` and every committed offset, so the follower drops what it has past them."""

    epoch: int
    covers: int  # 0: part of a catch-up in several messages, which brings nothing up to any commit
    prev: tuple[int, int]
    after: int = 0  # the covers of the message sent to this follower before this one (a live batch)
    sends: list[tuple[str, int, int, int, msgspec.Raw]] = []
    commits: dict[str, int] = {}
    whole: bool = False


class ReplicateOk(_Message, tag="replicate_ok"):
    """The follower holds, durably, the leader's log up to `covers`."""

    epoch: int
    covers: int


class ReplicateRefused(_Message, tag="replicate_refused"):
    """The follower did not apply a leader's message: its epoch is stale (`epoch` is the one
    the follower knows), or its log does not hold `prev`: the follower's batch `at` has epoch
    `at_epoch` (KIP-101's question: where did that epoch end in the leader's log?)."""

    epoch: int
    covers: int = 0  # the refused message's
    at: int = 0
    at_epoch: int = 0
    stale: bool = False


class Leadership(_Message, tag="leadership"):
    """News that a partition's leadership changed in lin-kv, from the node that changed it."""

    state: PartitionState


ReplicaMessage = Replicate | ReplicateOk | ReplicateRefused | Leadership
REPLICA_MESSAGE_TYPES = get_args(ReplicaMessage)


class KvRead(msgspec.Struct, tag="read", tag_field="type", kw_only=True):
    key: str
    msg_id: int


class KvCas(msgspec.Struct, tag="cas", tag_field="type", kw_only=True, rename={"from_": "from"}):
    key: str
    from_: PartitionState | None
    to: PartitionState
    create_if_not_exists: bool = False
    msg_id: int


class KvReadOk(msgspec.Struct, tag="read_ok", tag_field="type", kw_only=True):
    in_reply_to: int
    value: msgspec.Raw


class KvCasOk(msgspec.Struct, tag="cas_ok", tag_field="type", kw_only=True):
    in_reply_to: int


KvReply = KvReadOk | KvCasOk


class ReplicaEnvelope(msgspec.Struct):
    """A message from another replica, or lin-kv's reply to one of ours."""

    src: str
    body: ReplicaMessage | KvReply


class Sent(msgspec.Struct):
    """A message this node sends another replica or lin-kv."""

    src: str
    dest: str
    body: ReplicaMessage | KvRead | KvCas


_state_decoder = msgspec.json.Decoder(PartitionState)


def decode_state(value: msgspec.Raw) -> PartitionState | None:
    """A partition's state as lin-kv returned it; None if it is not one of ours."""
    try:
        return _state_decoder.decode(value)
    except msgspec.DecodeError:  # ValidationError too
        return None
