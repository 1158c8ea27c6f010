"""The Maelstrom wire protocol: one declared type per request and reply, the error codes, and
encoding of replies as JSON lines (`decoding` turns lines into these types). In a cluster,
also the replies one node sends another for a forwarded request, declared the same way."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Annotated, NamedTuple, get_args

import msgspec

from kafka_node import wire
from kafka_node.wire.kv import KvCas, KvRead, KvReply
from kafka_node.wire.replica import ReplicaMessage

#: Offsets above this are refused, so that offset + poll limit never overflows SQLite's int64.
MAX_OFFSET = 2**62


class ErrorCode(enum.IntEnum):
    """Maelstrom's error codes (https://github.com/jepsen-io/maelstrom/blob/main/doc/protocol.md)."""

    TIMEOUT = 0
    NODE_NOT_FOUND = 1
    NOT_SUPPORTED = 10
    TEMPORARILY_UNAVAILABLE = 11
    MALFORMED_REQUEST = 12
    CRASH = 13
    ABORT = 14
    KEY_DOES_NOT_EXIST = 20
    KEY_ALREADY_EXISTS = 21
    PRECONDITION_FAILED = 22
    TXN_CONFLICT = 30

    def is_definite(self) -> bool:
        """Whether this error promises that the operation did not happen.

        Maelstrom's checker treats an operation that failed with a definite error as never
        applied, so a definite error for something that may have been applied makes a
        correct history look invalid (or hides a real anomaly). Only timeout and crash are
        indefinite.
        """
        return self not in (ErrorCode.TIMEOUT, ErrorCode.CRASH)


Offset = Annotated[int, msgspec.Meta(ge=0, le=MAX_OFFSET)]


class _Request(msgspec.Struct, tag_field="type", kw_only=True):
    msg_id: int | None = None


class Init(_Request, tag="init"):
    node_id: str
    node_ids: list[str]


class Send(_Request, tag="send"):
    key: str
    msg: msgspec.Raw


class Poll(_Request, tag="poll"):
    offsets: dict[str, Offset]


class CommitOffsets(_Request, tag="commit_offsets"):
    offsets: dict[str, Offset]


class ListCommittedOffsets(_Request, tag="list_committed_offsets"):
    keys: list[str]


Request = Init | Send | Poll | CommitOffsets | ListCommittedOffsets
REQUEST_TYPES: dict[str, type] = {cls.__struct_config__.tag: cls for cls in get_args(Request)}


class Envelope(msgspec.Struct):
    src: str
    dest: str
    body: Request


class _Reply(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=True):
    in_reply_to: int | None = None


class InitOk(_Reply, tag="init_ok"):
    pass


class SendOk(_Reply, tag="send_ok"):
    offset: int


class PollOk(_Reply, tag="poll_ok"):
    msgs: msgspec.Raw  # {"key": [[offset, msg], ...]}, assembled as JSON text by storage


class CommitOffsetsOk(_Reply, tag="commit_offsets_ok"):
    pass


class ListCommittedOffsetsOk(_Reply, tag="list_committed_offsets_ok"):
    offsets: dict[str, int]


class Error(_Reply, tag="error"):
    code: int
    text: str


Reply = InitOk | SendOk | PollOk | CommitOffsetsOk | ListCommittedOffsetsOk | Error


class Outgoing(msgspec.Struct):
    src: str
    dest: str
    body: Reply


class Forwarded(msgspec.Struct):
    """A request sent on to the node owning its keys."""

    src: str
    dest: str
    body: Request


# --- what another node of the cluster answers to a forwarded request ---------------------------

class _PeerReply(msgspec.Struct, tag_field="type", kw_only=True):
    in_reply_to: int


class PeerSendOk(_PeerReply, tag="send_ok"):
    offset: Offset


class PeerPollOk(_PeerReply, tag="poll_ok"):
    msgs: dict[str, list[tuple[Offset, msgspec.Raw]]]


class PeerCommitOffsetsOk(_PeerReply, tag="commit_offsets_ok"):
    pass


class PeerListCommittedOffsetsOk(_PeerReply, tag="list_committed_offsets_ok"):
    offsets: dict[str, Offset]


class PeerError(_PeerReply, tag="error"):
    code: int
    text: str = ""


PeerReply = PeerSendOk | PeerPollOk | PeerCommitOffsetsOk | PeerListCommittedOffsetsOk | PeerError
PEER_REPLY_TYPES = frozenset(cls.__struct_config__.tag for cls in get_args(PeerReply))


class PeerReplyEnvelope(msgspec.Struct):
    """A reply from another node (or from anyone, in a reply's shape): never answered."""

    src: str
    body: PeerReply


class Bundle(msgspec.Struct, tag="bundle", tag_field="type"):
    """Everything one node had for another at one moment (requests sent on, replies to them,
    replicas' messages), in the order it was produced: one line, one message through the
    network, where each would have been a message of its own."""

    msgs: list[Request | PeerReply | ReplicaMessage]


class ClusterEnvelope(msgspec.Struct):
    """What a node in a cluster reads: a request, another node's reply to one it sent on, a
    replica's message, lin-kv's reply (`wire`), or a bundle of the first three."""

    src: str
    dest: str
    body: Request | PeerReply | ReplicaMessage | KvReply | Bundle


#: A message this node writes: a reply, a request sent on, or a replica's message.
Outbound = Outgoing | Forwarded | wire.Sent


class _BundleOut(msgspec.Struct, tag="bundle", tag_field="type"):
    """A `Bundle` as written: its members are this node's own replies and messages."""

    msgs: list[Reply | Request | ReplicaMessage | KvRead | KvCas]  # lin-kv is not a peer: never the last two


class _BundledOut(msgspec.Struct):
    src: str
    dest: str
    body: _BundleOut


class Rejected(NamedTuple):
    """A line that is not a valid request: who to tell (if anyone) and what to say."""

    src: str | None
    dest: str | None
    msg_id: int | None
    code: ErrorCode
    text: str


_encoder = msgspec.json.Encoder()


def message_text(send: Send) -> str:
    """The JSON text of a sent message, exactly as it arrived, ready to store.

    A carriage return can only be whitespace in valid JSON; it is replaced by a space so a
    reader that splits lines on CR (as Java's readLine does) still sees one line per reply.
    """
    text = str(memoryview(send.msg), "utf-8")
    return text.replace("\r", " ") if "\r" in text else text


def carried_text(body: Request) -> msgspec.Raw | None:
    """The JSON text a request carries as it came, unparsed (a send's message), if any: the
    decoder leaves its bytes unchecked, so they are checked for valid UTF-8 on their own."""
    return body.msg if type(body) is Send else None


def json_text(text: bytes) -> msgspec.Raw:
    """JSON text from storage, to be embedded in a reply without decoding and re-encoding."""
    return msgspec.Raw(text)


def encode(messages: Sequence[Outbound], peers: frozenset[str] = frozenset()) -> bytes:
    """Encode replies (and forwarded requests) as JSON lines, newline-terminated; the messages
    for each node of `peers` go in one `Bundle`, where the first of them would have gone."""
    if peers and len(messages) > 1:
        return _encoder.encode_lines(bundled(messages, peers))
    return _encoder.encode_lines(messages)


def bundled(messages: Sequence[Outbound], peers: frozenset[str]) -> list[Outbound | _BundledOut]:
    """`messages`, with those for each of `peers` in one bundle (alone, a message stays as it is)."""
    groups: dict[str, list[Outbound]] = {}
    order: list[Outbound | list[Outbound]] = []
    for message in messages:
        if message.dest not in peers:
            order.append(message)
        elif (group := groups.get(message.dest)) is not None:
            group.append(message)
        else:
            groups[message.dest] = group = [message]
            order.append(group)
    return [entry if not isinstance(entry, list) else entry[0] if len(entry) == 1
            else _BundledOut(entry[0].src, entry[0].dest, _BundleOut([message.body for message in entry]))
            for entry in order]
