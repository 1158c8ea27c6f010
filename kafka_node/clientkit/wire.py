"""The kafka workload's messages as a client sees them: the requests it writes and the replies it
accepts, declared here rather than borrowed from the node, so that a client cannot share its mistakes."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec

from kafka_node.clientkit.framing import split_lines

#: The request types a client can send, by the name used in the benchmark's `--mix` and reports.
RPCS = ("send", "poll", "commit_offsets", "list_committed_offsets")


# --- requests ------------------------------------------------------------------------------

class Init(msgspec.Struct, tag_field="type", tag="init"):
    node_id: str
    node_ids: list[str]
    msg_id: int


class Send(msgspec.Struct, tag_field="type", tag="send"):
    key: str
    msg: msgspec.Raw  # encoded once, sent many times
    msg_id: int


class Poll(msgspec.Struct, tag_field="type", tag="poll"):
    offsets: dict[str, int]
    msg_id: int


class CommitOffsets(msgspec.Struct, tag_field="type", tag="commit_offsets"):
    offsets: dict[str, int]
    msg_id: int


class ListCommittedOffsets(msgspec.Struct, tag_field="type", tag="list_committed_offsets"):
    keys: list[str]
    msg_id: int


RequestBody = Init | Send | Poll | CommitOffsets | ListCommittedOffsets


class Request(msgspec.Struct):
    src: str
    dest: str
    body: RequestBody


# --- replies -------------------------------------------------------------------------------

class ReplyFields(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    """What Maelstrom's reply schemas allow besides each reply's own fields. The schemas are
    closed: a reply with any other field, or with these mistyped, fails its check."""

    in_reply_to: int
    msg_id: int | msgspec.UnsetType = msgspec.UNSET


class InitOk(ReplyFields, tag="init_ok", forbid_unknown_fields=False):
    """Only its type is looked at, as Maelstrom does before the workload begins."""


class SendOk(ReplyFields, tag="send_ok"):
    offset: int


Messages = TypeVar("Messages")

#: A poll's messages decoded and checked: per key, [offset, message] pairs (a null list passes
#: Maelstrom's schema). `PollOk[msgspec.Raw]` leaves them undecoded, for a client that only counts.
PolledMessages = dict[str, list[tuple[int, Any]] | None]


class PollOk(ReplyFields, Generic[Messages], tag="poll_ok"):
    msgs: Messages


class CommitOffsetsOk(ReplyFields, tag="commit_offsets_ok"):
    pass


class ListCommittedOffsetsOk(ReplyFields, tag="list_committed_offsets_ok"):
    offsets: dict[str, int]


class Error(msgspec.Struct, tag_field="type", tag="error", kw_only=True):
    """Maelstrom checks no error body against a schema: its code is what counts."""

    code: int
    text: str = ""
    in_reply_to: int


#: Any reply, with a poll's messages left undecoded: what a client measuring speed decodes.
ReplyBody = InitOk | SendOk | PollOk[msgspec.Raw] | CommitOffsetsOk | ListCommittedOffsetsOk | Error


class Reply(msgspec.Struct):
    src: str
    dest: str
    body: ReplyBody


#: The reply type each request type must get, by RPC name.
EXPECTED_REPLY: dict[str, type] = {
    "init": InitOk,
    "send": SendOk,
    "poll": PollOk,
    "commit_offsets": CommitOffsetsOk,
    "list_committed_offsets": ListCommittedOffsetsOk,
}


class Undecodable(msgspec.Struct):
    """A line of the node's stdout that is not a reply of the expected shape."""

    line: bytes
    reason: str


_replies = msgspec.json.Decoder(Reply)


def decode_replies(block: bytes) -> list[Reply | Undecodable]:
    """Every line of `block` (complete lines only) as a reply, or why it is not one.

    All lines are decoded by one call; only when that fails is each line decoded alone, to
    find out which lines are wrong.
    """
    try:
        return list(_replies.decode_lines(block))
    except msgspec.DecodeError:
        pass
    decoded: list[Reply | Undecodable] = []
    for line in split_lines(block):
        if not line.strip():
            continue
        try:
            decoded.append(_replies.decode(line))
        except msgspec.DecodeError as error:
            decoded.append(Undecodable(line=line[:-1], reason=str(error)))
    return decoded
