"""The Maelstrom wire protocol: one declared type per request and reply, decoding with
field-level validation, the error codes, and encoding of replies as JSON lines. In a
cluster, also the replies one node sends another for a forwarded request, declared and
validated the same way."""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from typing import Annotated, NamedTuple, get_args

import msgspec

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


class _ClusterEnvelope(msgspec.Struct):
    src: str
    dest: str
    body: Request | PeerReply


class Rejected(NamedTuple):
    """A line that is not a valid request: who to tell (if anyone) and what to say."""

    src: str | None
    dest: str | None
    msg_id: int | None
    code: ErrorCode
    text: str


_envelope_decoder = msgspec.json.Decoder(Envelope)
_cluster_envelope_decoder = msgspec.json.Decoder(_ClusterEnvelope)
_encoder = msgspec.json.Encoder()

#: A JSON value that was absent from the line.
_ABSENT = msgspec.Raw(b"")

#: The longest refused body whose offending `offsets` key is named in the error text; a
#: longer one keeps msgspec's `[...]` rather than be decoded a second time in full.
NAMED_KEY_BODY_BYTES = 64 << 10


class _LooseEnvelope(msgspec.Struct):
    """The envelope's fields as raw JSON text: decoding it copies no field's value."""

    src: msgspec.Raw = _ABSENT
    dest: msgspec.Raw = _ABSENT
    body: msgspec.Raw = _ABSENT


class _LooseBody(msgspec.Struct):
    type: msgspec.Raw = _ABSENT
    msg_id: msgspec.Raw = _ABSENT


_loose_envelope_decoder = msgspec.json.Decoder(_LooseEnvelope)
_loose_body_decoder = msgspec.json.Decoder(_LooseBody)


def decode(line: bytes | bytearray) -> Envelope | Rejected:
    """Decode one line into a request, or say why it is not one."""
    try:
        envelope = _envelope_decoder.decode(line)
    except (ValueError, RecursionError) as error:  # msgspec's errors; UnicodeDecodeError; nesting too deep
        return _refused(line, error, replies_known=False)
    return _with_utf8_message(envelope)


def decode_in_cluster(line: bytes | bytearray) -> Envelope | PeerReplyEnvelope | Rejected:
    """Decode one line of a node in a cluster: a request, or a reply from another node to a
    request it was forwarded. A line shaped like a reply is never answered, even when it is
    malformed, so that two nodes never trade errors about each other's replies."""
    try:
        decoded = _cluster_envelope_decoder.decode(line)
    except (ValueError, RecursionError) as error:
        return _refused(line, error, replies_known=True)
    body = decoded.body
    if isinstance(body, _PeerReply):
        return PeerReplyEnvelope(decoded.src, body)
    return _with_utf8_message(Envelope(decoded.src, decoded.dest, body))


def _refused(line: bytes | bytearray, error: ValueError | RecursionError, replies_known: bool) -> Rejected:
    try:
        return refusal(line, _reason(error), replies_known)
    except Exception as unexpected:  # the last word on input nobody foresaw: refuse it, never crash
        return Rejected(None, None, None, ErrorCode.MALFORMED_REQUEST, f"undecodable line ({unexpected!r})")


def _with_utf8_message(envelope: Envelope) -> Envelope | Rejected:
    body = envelope.body
    if type(body) is Send and not _is_utf8(body.msg):  # msgspec does not check the bytes of a Raw value
        return Rejected(envelope.src, envelope.dest, body.msg_id, ErrorCode.MALFORMED_REQUEST,
                        "invalid request: `$.body.msg` is not valid UTF-8")
    return envelope


def _is_utf8(raw: msgspec.Raw) -> bool:
    try:
        str(memoryview(raw), "utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _reason(error: ValueError | RecursionError) -> str:
    if isinstance(error, RecursionError):
        return "JSON nested too deeply"
    if isinstance(error, UnicodeDecodeError):
        return f"not valid UTF-8 ({error})"
    if isinstance(error, msgspec.ValidationError):
        return str(error)
    return f"not valid JSON text ({error})"


def refusal(line: bytes | bytearray, reason: str, replies_known: bool = False) -> Rejected:
    """Whom to answer, and with which error, about a line that is not a valid request.

    The one path for every refused line, and bounded whatever the line holds: a loose
    decode that copies no value but `src`, `dest`, `type` and `msg_id` finds the asker; a
    line that cannot be parsed at all is searched for those fields instead (`search_asker`).
    Nothing parses the line in full a second time. With `replies_known` (a node in a
    cluster), a malformed reply is only logged: nobody is answered.
    """
    try:
        loose = _loose_envelope_decoder.decode(line)
    except msgspec.ValidationError:  # valid JSON, but not an object
        return Rejected(None, None, None, ErrorCode.MALFORMED_REQUEST, f"not a JSON message: {reason}")
    except (ValueError, RecursionError):  # not JSON: malformed, invalid UTF-8, or nested too deeply
        return search_asker(line, f"invalid request: {reason}", f"not a JSON message: {reason}")
    src, dest = _string(loose.src), _string(loose.dest)  # without src, a rejection is only logged
    if loose.body is _ABSENT:
        return Rejected(src, dest, None, ErrorCode.MALFORMED_REQUEST, "missing field `$.body`")
    try:
        body = _loose_body_decoder.decode(loose.body)
    except msgspec.ValidationError as not_an_object:
        return Rejected(src, dest, None, ErrorCode.MALFORMED_REQUEST, f"invalid `$.body`: {not_an_object}")
    msg_id = _integer(body.msg_id)
    if msg_id is None and body.msg_id is not _ABSENT and bytes(memoryview(body.msg_id)) != b"null":
        return Rejected(src, dest, None, ErrorCode.MALFORMED_REQUEST, "`$.body.msg_id` must be an integer")
    if body.type is _ABSENT:
        return Rejected(src, dest, msg_id, ErrorCode.MALFORMED_REQUEST, "missing field `$.body.type`")
    request_type = _string(body.type)
    if request_type is None:
        return Rejected(src, dest, msg_id, ErrorCode.MALFORMED_REQUEST, "`$.body.type` must be a string")
    if replies_known and request_type in PEER_REPLY_TYPES:
        return Rejected(None, dest, None, ErrorCode.MALFORMED_REQUEST, f"ignored a malformed reply from {src}: {reason}")
    if request_type not in REQUEST_TYPES:
        return Rejected(src, dest, msg_id, ErrorCode.NOT_SUPPORTED, f"unsupported message type {request_type!r}")
    if src is None:
        return Rejected(None, dest, msg_id, ErrorCode.MALFORMED_REQUEST, "`$.src` must be a string")
    return Rejected(src, dest, msg_id, ErrorCode.MALFORMED_REQUEST,
                    f"invalid request: {_name_offending_key(reason, loose.body)}")


def _string(raw: msgspec.Raw) -> str | None:
    try:
        return msgspec.json.decode(raw, type=str) if raw else None
    except ValueError:  # not a string, or not UTF-8
        return None


def _integer(raw: msgspec.Raw) -> int | None:
    try:
        return msgspec.json.decode(raw, type=int) if raw else None
    except ValueError:
        return None


def _name_offending_key(text: str, body: msgspec.Raw) -> str:
    """Replace msgspec's `[...]` in an offsets path with the key whose value is wrong, when
    the body is small enough to decode again."""
    if "offsets[...]" not in text or len(body) > NAMED_KEY_BODY_BYTES:
        return text
    offsets = msgspec.json.decode(body).get("offsets")
    if isinstance(offsets, dict):
        for key, value in offsets.items():
            if type(value) is not int or not 0 <= value <= MAX_OFFSET:
                return text.replace("[...]", msgspec.json.encode([key]).decode())
    return text


_SRC_FIELD = re.compile(rb'"src"\s*:\s*"([^"\\]{1,200})"')
_DEST_FIELD = re.compile(rb'"dest"\s*:\s*"([^"\\]{1,200})"')
_MSG_ID_FIELD = re.compile(rb'"msg_id"\s*:\s*(\d{1,18})[\s,}]')


def search_asker(text: bytes | bytearray, answer: str, log_only: str) -> Rejected:
    """The rejection of a line that cannot be parsed (or of the kept beginning of a line too
    long to keep), addressed to its asker when the line names one without doubt.

    `src` and `msg_id` (and `dest`, if present) must each occur exactly once as a field with
    a plain value; a fast bytes search finds them without copying the line. Otherwise
    nobody is answered and the line is only logged, with `log_only`.
    """
    found = [_field(text, b'"src"', _SRC_FIELD), _field(text, b'"msg_id"', _MSG_ID_FIELD)]
    src, msg_id = found
    if src is None or msg_id is None:
        return Rejected(None, None, None, ErrorCode.MALFORMED_REQUEST, log_only)
    dest = _field(text, b'"dest"', _DEST_FIELD)
    try:
        return Rejected(src.decode(), dest.decode() if dest else None, int(msg_id), ErrorCode.MALFORMED_REQUEST, answer)
    except UnicodeDecodeError:
        return Rejected(None, None, None, ErrorCode.MALFORMED_REQUEST, log_only)


def _field(text: bytes | bytearray, name: bytes, pattern: re.Pattern[bytes]) -> bytes | None:
    """The plain value of a field named exactly once in `text`, else None."""
    at = text.find(name)
    if at == -1 or text.find(name, at + 1) != -1:
        return None
    match = pattern.match(text, at)
    return match[1] if match else None


def refuse_oversized(head: bytes, limit: int) -> Rejected:
    """The rejection of a line longer than `limit` bytes, of which only `head` was kept:
    Maelstrom's clients write `src` and `msg_id` before the payload."""
    text = f"request longer than the {limit}-byte line limit"
    return search_asker(head, text, text)


def message_text(send: Send) -> str:
    """The JSON text of a sent message, exactly as it arrived, ready to store.

    A carriage return can only be whitespace in valid JSON; it is replaced by a space so a
    reader that splits lines on CR (as Java's readLine does) still sees one line per reply.
    """
    text = str(memoryview(send.msg), "utf-8")
    return text.replace("\r", " ") if "\r" in text else text


def json_text(text: bytes) -> msgspec.Raw:
    """JSON text from storage, to be embedded in a reply without decoding and re-encoding."""
    return msgspec.Raw(text)


def encode(messages: Sequence[Outgoing | Forwarded]) -> bytes:
    """Encode replies (and forwarded requests) as JSON lines, newline-terminated."""
    return _encoder.encode_lines(messages)
