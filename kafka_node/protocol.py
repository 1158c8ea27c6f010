"""The Maelstrom wire protocol: one declared type per request and reply, decoding with
field-level validation, the error codes, and encoding of replies as JSON lines."""

from __future__ import annotations

import enum
import json
import re
from typing import Annotated, Any, NamedTuple, Union

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


Request = Union[Init, Send, Poll, CommitOffsets, ListCommittedOffsets]
REQUEST_TYPES: dict[str, type] = {cls.__struct_config__.tag: cls for cls in Request.__args__}


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


Reply = Union[InitOk, SendOk, PollOk, CommitOffsetsOk, ListCommittedOffsetsOk, Error]


class Outgoing(msgspec.Struct):
    src: str
    dest: str
    body: Reply


class Rejected(NamedTuple):
    """A line that is not a valid request: who to tell (if anyone) and what to say."""

    src: str | None
    dest: str | None
    msg_id: int | None
    code: ErrorCode
    text: str


_envelope_decoder = msgspec.json.Decoder(Envelope)
_encoder = msgspec.json.Encoder()


class _LooseEnvelope(msgspec.Struct):
    src: Any = None
    dest: Any = None
    body: msgspec.Raw = msgspec.Raw(b"")  # empty when the field is absent


class _LooseBody(msgspec.Struct):
    type: Any = None
    msg_id: Any = None


def decode(line: bytes) -> Envelope | Rejected:
    """Decode one line into a request, or say why it is not one."""
    try:
        envelope = _envelope_decoder.decode(line)
    except Exception as error:  # DecodeError, and UnicodeDecodeError or RecursionError from hostile bytes
        return _diagnose(line, error)
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


def _diagnose(line: bytes, error: Exception) -> Rejected:
    """Find out, for a line the typed decoder refused, whom to answer and with which error.

    Slow path only: it decodes the envelope loosely to recover src, dest, msg_id and type,
    so the reply can name the offending field and reach the asker.
    """
    try:
        return _diagnose_loosely(line, error)
    except Exception as unexpected:  # the last word on input nobody foresaw: refuse it, never crash
        return Rejected(None, None, None, ErrorCode.MALFORMED_REQUEST, f"undecodable line ({unexpected!r})")


def _diagnose_loosely(line: bytes, error: Exception) -> Rejected:
    try:
        loose = msgspec.json.decode(line, type=_LooseEnvelope)
    except RecursionError:
        return Rejected(None, None, None, ErrorCode.MALFORMED_REQUEST, "JSON nested too deeply")
    except ValueError as not_an_object:  # msgspec.DecodeError or UnicodeDecodeError
        return _diagnose_invalid_json(line, not_an_object)
    src = loose.src if isinstance(loose.src, str) else None
    dest = loose.dest if isinstance(loose.dest, str) else None
    if not loose.body:
        return Rejected(src, dest, None, ErrorCode.MALFORMED_REQUEST, "missing field `$.body`")
    try:
        body = msgspec.json.decode(loose.body, type=_LooseBody)
    except RecursionError:
        return Rejected(src, dest, None, ErrorCode.MALFORMED_REQUEST, "JSON nested too deeply in `$.body`")
    except ValueError as not_an_object:
        return Rejected(src, dest, None, ErrorCode.MALFORMED_REQUEST, f"invalid `$.body`: {not_an_object}")
    msg_id = body.msg_id
    if msg_id is not None and (type(msg_id) is not int):
        return Rejected(src, dest, None, ErrorCode.MALFORMED_REQUEST, "`$.body.msg_id` must be an integer")
    if body.type is None:
        return Rejected(src, dest, msg_id, ErrorCode.MALFORMED_REQUEST, "missing field `$.body.type`")
    if not isinstance(body.type, str):
        return Rejected(src, dest, msg_id, ErrorCode.MALFORMED_REQUEST, "`$.body.type` must be a string")
    if body.type not in REQUEST_TYPES:
        return Rejected(src, dest, msg_id, ErrorCode.NOT_SUPPORTED, f"unsupported message type {body.type!r}")
    if src is None:
        # A request nobody can be answered about is only logged.
        return Rejected(None, dest, msg_id, ErrorCode.MALFORMED_REQUEST, "`$.src` must be a string")
    return Rejected(src, dest, msg_id, ErrorCode.MALFORMED_REQUEST, _name_offending_key(str(error), loose.body))


def _diagnose_invalid_json(line: bytes, error: ValueError) -> Rejected:
    """A line msgspec cannot parse may still name its asker: the standard library's parser
    accepts what msgspec refuses in valid-looking JSON (lone UTF-16 surrogates such as
    `"\\ud800"`), so the asker hears why instead of waiting for a timeout."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return Rejected(None, None, None, ErrorCode.MALFORMED_REQUEST, f"not a JSON message: {error}")
    if not isinstance(message, dict) or not isinstance(message.get("body"), dict):
        return Rejected(None, None, None, ErrorCode.MALFORMED_REQUEST, f"not a JSON message: {error}")
    src, dest, body = _encodable(message.get("src")), _encodable(message.get("dest")), message["body"]
    if src is None:
        return Rejected(None, None, None, ErrorCode.MALFORMED_REQUEST, f"not a JSON message: {error}")
    msg_id = body.get("msg_id") if type(body.get("msg_id")) is int else None
    return Rejected(src, dest, msg_id, ErrorCode.MALFORMED_REQUEST, f"invalid request: not valid JSON text ({error})")


def _encodable(value: Any) -> str | None:
    """The value if it is a string that can be written back as UTF-8, else None."""
    if not isinstance(value, str):
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


def _name_offending_key(text: str, body: msgspec.Raw) -> str:
    """Replace msgspec's `[...]` in an offsets path with the key whose value is wrong."""
    offsets = msgspec.json.decode(body).get("offsets") if "offsets[...]" in text else None
    if isinstance(offsets, dict):
        for key, value in offsets.items():
            if type(value) is not int or not 0 <= value <= MAX_OFFSET:
                text = text.replace("[...]", msgspec.json.encode([key]).decode())
                break
    return f"invalid request: {text}"


#: How much of an over-long line is searched for its asker and msg_id.
OVERSIZED_HEAD_BYTES = 64 << 10
_SRC_FIELD = re.compile(rb'"src"\s*:\s*"([^"\\]{1,200})"')
_DEST_FIELD = re.compile(rb'"dest"\s*:\s*"([^"\\]{1,200})"')
_MSG_ID_FIELD = re.compile(rb'"msg_id"\s*:\s*(\d{1,18})[\s,}]')


def oversized(line: bytes, limit: int) -> Rejected:
    """The rejection of a line longer than `limit` bytes, addressed to its asker when the
    line's beginning names one (it is too long to parse, so its first 64 KiB are searched
    for `src`, `dest` and `msg_id`, which Maelstrom's clients write before the payload)."""
    head = line[:OVERSIZED_HEAD_BYTES]
    fields = [pattern.search(head) for pattern in (_SRC_FIELD, _DEST_FIELD, _MSG_ID_FIELD)]
    src, dest, msg_id = (match[1] if match else None for match in fields)
    text = f"request longer than the {limit}-byte line limit"
    try:
        return Rejected(src and src.decode(), dest and dest.decode(), msg_id and int(msg_id),
                        ErrorCode.MALFORMED_REQUEST, text)
    except UnicodeDecodeError:
        return Rejected(None, None, None, ErrorCode.MALFORMED_REQUEST, text)


def message_text(send: Send) -> str:
    """The JSON text of a sent message, exactly as it arrived, ready to store.

    A carriage return can only be whitespace in valid JSON; it is replaced by a space so a
    reader that splits lines on CR (as Java's readLine does) still sees one line per reply.
    """
    text = str(memoryview(send.msg), "utf-8")
    return text.replace("\r", " ") if "\r" in text else text


def json_text(text: str) -> msgspec.Raw:
    """JSON text from storage, to be embedded in a reply without decoding and re-encoding."""
    return msgspec.Raw(text.encode())


def encode(messages: list[Outgoing]) -> bytes:
    """Encode replies as JSON lines, newline-terminated."""
    return _encoder.encode_lines(messages)
