"""The four RPCs as plain functions of the log, the request and the poll limits: what each
reply says. They hold no state, and a run of consecutive sends is appended by one call."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

from kafka_node import protocol
from kafka_node.storage.log import Log


@dataclass(frozen=True)
class PollLimits:
    """How much one `poll_ok` may hold (the command line's --poll-max-* flags)."""

    per_key: int = 100
    messages: int = 100_000
    bytes: int = 4 << 20


def send(log: Log, bodies: list[protocol.Send]) -> list[protocol.SendOk]:
    """A run of consecutive sends, appended together in their order."""
    offsets = log.append_many([(body.key, protocol.message_text(body)) for body in bodies])
    return [protocol.SendOk(in_reply_to=body.msg_id, offset=offset) for body, offset in zip(bodies, offsets, strict=True)]


def poll(log: Log, body: protocol.Poll, limits: PollLimits, below: Mapping[str, int] | None = None) -> protocol.PollOk:
    """Messages from each asked offset on (for the keys in `below`, only below their offset there)."""
    offsets, per_key = body.offsets, limits.per_key
    if len(offsets) * per_key > limits.messages:
        # Bound the reply: fewer messages per key, and past the budget, keys left out
        # (a poll may return any prefix of a key's log, including none of it).
        per_key = max(1, limits.messages // len(offsets))
        offsets = dict(itertools.islice(offsets.items(), limits.messages))
    msgs = log.read_from(offsets, per_key, limits.bytes, below)
    return protocol.PollOk(in_reply_to=body.msg_id, msgs=protocol.json_text(msgs))


def commit_offsets(log: Log, body: protocol.CommitOffsets) -> protocol.CommitOffsetsOk:
    log.commit_offsets(body.offsets)
    return protocol.CommitOffsetsOk(in_reply_to=body.msg_id)


def list_committed_offsets(log: Log, body: protocol.ListCommittedOffsets) -> protocol.ListCommittedOffsetsOk:
    return protocol.ListCommittedOffsetsOk(in_reply_to=body.msg_id, offsets=log.committed_offsets(body.keys))
