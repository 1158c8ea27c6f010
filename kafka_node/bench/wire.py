"""The protocol as the load generator sees it: the requests it writes and the replies it expects,
declared on their own (not borrowed from the node) so that any node program can be measured."""

from __future__ import annotations

import msgspec

#: The request types the generator can mix, by the name used in `--mix` and in its reports.
RPCS = ("send", "poll", "commit_offsets", "list_committed_offsets")


class Init(msgspec.Struct, tag_field="type", tag="init"):
    node_id: str
    node_ids: list[str]
    msg_id: int


class Send(msgspec.Struct, tag_field="type", tag="send"):
    key: str
    msg: msgspec.Raw
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


class _Reply(msgspec.Struct, tag_field="type", kw_only=True):
    in_reply_to: int


class InitOk(_Reply, tag="init_ok"):
    pass


class SendOk(_Reply, tag="send_ok"):
    offset: int


class PollOk(_Reply, tag="poll_ok"):
    msgs: msgspec.Raw  # left undecoded: its size says nothing about the reply's correctness here


class CommitOffsetsOk(_Reply, tag="commit_offsets_ok"):
    pass


class ListCommittedOffsetsOk(_Reply, tag="list_committed_offsets_ok"):
    offsets: dict[str, int]


class Error(_Reply, tag="error"):
    code: int
    text: str = ""


ReplyBody = InitOk | SendOk | PollOk | CommitOffsetsOk | ListCommittedOffsetsOk | Error


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

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Reply)


def encode_lines(requests: list[Request]) -> bytes:
    """Requests as JSON lines, each ending with a newline, in one buffer."""
    return _encoder.encode_lines(requests)


class Undecodable(msgspec.Struct):
    """A line of the node's stdout that is not a reply of the expected shape."""

    line: bytes
    reason: str


def decode_lines(data: bytes) -> list[Reply | Undecodable]:
    """Every line of `data` (complete lines only) as a reply, or why it is not one.

    All lines are decoded by one call; only when that fails is each line decoded alone, to
    find out which lines are wrong.
    """
    try:
        return list(_decoder.decode_lines(data))
    except msgspec.DecodeError:
        pass
    decoded: list[Reply | Undecodable] = []
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            decoded.append(_decoder.decode(line))
        except msgspec.DecodeError as error:
            decoded.append(Undecodable(line=line, reason=str(error)))
    return decoded


def json_string_of(size: int) -> bytes:
    """A JSON string value whose text is `size` bytes of letters (quotes not counted)."""
    letters = b"abcdefghijklmnopqrstuvwxyz"
    return b'"' + (letters * (size // len(letters) + 1))[:size] + b'"'
