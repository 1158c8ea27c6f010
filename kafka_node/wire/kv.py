"""What goes to Maelstrom's lin-kv service and comes back from it (src/maelstrom/service.clj in
jepsen-io/maelstrom), as declared types, and its error codes."""

from __future__ import annotations

import msgspec

from kafka_node.wire.replica import PartitionState

#: Maelstrom's lin-kv service, where each partition's leadership lives.
LIN_KV = "lin-kv"

#: lin-kv's error code for a read of a key it holds no value for.
KEY_DOES_NOT_EXIST = 20


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

_state_decoder = msgspec.json.Decoder(PartitionState)


def decode_state(value: msgspec.Raw) -> PartitionState | None:
    """A partition's state as lin-kv returned it; None if it is not one of ours."""
    try:
        return _state_decoder.decode(value)
    except msgspec.DecodeError:  # ValidationError too
        return None
