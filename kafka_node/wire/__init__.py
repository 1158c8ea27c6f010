"""What replicas and lin-kv are sent and send back, as declared types (msgspec only): the leaf that
the protocol, the decoder, the outbox and replication all share."""

from __future__ import annotations

import msgspec

from kafka_node.wire.kv import KvCas, KvRead, KvReply
from kafka_node.wire.replica import ReplicaMessage


class ReplicaEnvelope(msgspec.Struct):
    """A message from another replica, or lin-kv's reply to one of ours."""

    src: str
    body: ReplicaMessage | KvReply


class Sent(msgspec.Struct):
    """A message this node sends another replica or lin-kv."""

    src: str
    dest: str
    body: ReplicaMessage | KvRead | KvCas
