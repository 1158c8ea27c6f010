"""Turns one input line into a request (typed, validated while it is parsed), or into a
`Rejected` that says in the node's own words what was wrong and whom to tell, on one bounded path."""

from __future__ import annotations

import codecs
import re
from typing import Annotated, Any, get_args, get_origin

import msgspec

from kafka_node.protocol import (
    MAX_OFFSET,
    PEER_REPLY_TYPES,
    REQUEST_TYPES,
    Bundle,
    ClusterEnvelope,
    Envelope,
    ErrorCode,
    PeerReplyEnvelope,
    Rejected,
    _PeerReply,
    carried_text,
)
from kafka_node.wire import ReplicaEnvelope
from kafka_node.wire.kv import KvCasOk, KvReadOk
from kafka_node.wire.replica import REPLICA_MESSAGE_TYPES

_REPLICA_TYPES = (*REPLICA_MESSAGE_TYPES, KvReadOk, KvCasOk)
#: Replicas' messages, lin-kv's replies and other nodes' bundles are never answered: a malformed
#: one is only logged.
_REPLICA_TAGS = frozenset(cls.__struct_config__.tag for cls in (*_REPLICA_TYPES, Bundle))

_envelope_decoder = msgspec.json.Decoder(Envelope)
_cluster_envelope_decoder = msgspec.json.Decoder(ClusterEnvelope)

#: A JSON value that was absent from the line.
_ABSENT = msgspec.Raw(b"")

#: The longest list or object in a refused request whose members are looked at one by one to
#: name the wrong one (`$.body.offsets["k"]`); a longer one is named as a whole, so that a
#: refused line is never taken apart into millions of pieces.
NAMED_MEMBER_BYTES = 64 << 10

#: Bytes checked at a time when looking for invalid UTF-8 in a line that did not parse.
_UTF8_CHECK_BYTES = 1 << 20


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


InClusterMessage = Envelope | PeerReplyEnvelope | ReplicaEnvelope | Rejected


def decode_in_cluster(line: bytes | bytearray, bundles: bool = True) -> list[InClusterMessage]:
    """Decode one line of a node in a cluster: a request, a reply from another node to a
    request it was forwarded, or a replica's message (or lin-kv's reply); or a bundle of
    these from another node, each decoded as if it had come alone. A line shaped like a
    reply is never answered, even when it is malformed, so that two nodes never trade errors
    about each other's replies."""
    try:
        decoded = _cluster_envelope_decoder.decode(line)
    except (ValueError, RecursionError) as error:
        members = _bundle_members(line) if bundles else None
        if members is not None:  # one malformed member: the others are still taken (a bundle in it is not)
            return [message for member in members for message in decode_in_cluster(member, bundles=False)]
        return [_refused(line, error, replies_known=True)]
    body = decoded.body
    if type(body) is Bundle:
        return [_in_cluster(decoded.src, decoded.dest, member) for member in body.msgs]
    return [_in_cluster(decoded.src, decoded.dest, body)]


def _in_cluster(src: str, dest: str, body: Any) -> InClusterMessage:
    if isinstance(body, _PeerReply):
        return PeerReplyEnvelope(src, body)  # type: ignore[arg-type]  # one of PeerReply's members
    if isinstance(body, _REPLICA_TYPES):
        return ReplicaEnvelope(src, body)
    return _with_utf8_message(Envelope(src, dest, body))


def decode_unbundled(line: bytes | bytearray) -> list[Envelope | Rejected]:
    """Decode one line of a node not in a cluster (yet): a request, or each member of another
    node's bundle as if it had come alone (a request sent on is then answered, at once)."""
    decoded = decode(line)
    if type(decoded) is Rejected and (members := _bundle_members(line)) is not None:
        return [decode(member) for member in members]
    return [decoded]


class _LooseBundle(msgspec.Struct, tag="bundle", tag_field="type"):
    msgs: list[msgspec.Raw]


class _LooseBundleEnvelope(msgspec.Struct):
    src: msgspec.Raw
    dest: msgspec.Raw
    body: _LooseBundle


_loose_bundle_decoder = msgspec.json.Decoder(_LooseBundleEnvelope)


def _bundle_members(line: bytes | bytearray) -> list[bytes] | None:
    """A bundle's members, each as the line it would have been alone; None if `line` is not
    a bundle with a string src and dest."""
    if b'"bundle"' not in line:
        return None
    try:
        loose = _loose_bundle_decoder.decode(line)
        for field in (loose.src, loose.dest):
            msgspec.json.decode(field, type=str)
    except (ValueError, RecursionError):  # not one, or its src or dest is not a string
        return None
    head = b'{"src":' + bytes(loose.src) + b',"dest":' + bytes(loose.dest) + b',"body":'
    return [head + bytes(member) + b"}" for member in loose.body.msgs]


def _refused(line: bytes | bytearray, error: ValueError | RecursionError, replies_known: bool) -> Rejected:
    try:
        return refusal(line, _reason(line, error), replies_known)
    except Exception as unexpected:  # the last word on input nobody foresaw: refuse it, never crash
        return Rejected(None, None, None, ErrorCode.MALFORMED_REQUEST, f"undecodable line ({unexpected!r})")


def _with_utf8_message(envelope: Envelope) -> Envelope | Rejected:
    body = envelope.body
    text = carried_text(body)
    if text is not None and not _is_utf8(text):  # msgspec does not check the bytes of a Raw value
        return Rejected(envelope.src, envelope.dest, body.msg_id, ErrorCode.MALFORMED_REQUEST,
                        "invalid request: `$.body.msg` is not valid UTF-8")
    return envelope


def _is_utf8(text: bytes | bytearray | msgspec.Raw) -> bool:
    """Whether `text` is valid UTF-8; a long text is checked a slice at a time, so that it is
    never copied whole to find out."""
    if isinstance(text, bytes | bytearray) and text.isascii():
        return True
    view = memoryview(text)
    try:
        if len(view) <= _UTF8_CHECK_BYTES:
            str(view, "utf-8")
        else:
            decoder = codecs.getincrementaldecoder("utf-8")()
            for start in range(0, len(view), _UTF8_CHECK_BYTES):
                decoder.decode(view[start:start + _UTF8_CHECK_BYTES])
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _reason(line: bytes | bytearray, error: ValueError | RecursionError) -> str:
    """What was wrong with a line the typed decoder refused, in the node's words (the
    decoder's own words follow where they add something)."""
    if isinstance(error, RecursionError):
        return "JSON nested too deeply"
    if isinstance(error, msgspec.ValidationError):
        return f"fields of the wrong type or missing ({error})"
    if isinstance(error, UnicodeDecodeError) or not _is_utf8(line):
        return "not valid UTF-8"
    return f"not valid JSON ({error})"


def refusal(line: bytes | bytearray, reason: str, replies_known: bool = False) -> Rejected:
    """Whom to answer, and with which error, about a line that is not a valid request.

    The one path for every refused line, and bounded whatever the line holds: a loose
    decode that copies no value but `src`, `dest`, `type` and `msg_id` finds the asker; a
    line that cannot be parsed at all is searched for those fields instead (`search_asker`).
    Only a field found wrong is decoded again, never the whole line. With `replies_known` (a
    node in a cluster), a malformed reply is only logged: nobody is answered.
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
    except msgspec.ValidationError:
        return Rejected(src, dest, None, ErrorCode.MALFORMED_REQUEST, "`$.body` must be an object")
    msg_id = _integer(body.msg_id)
    if msg_id is None and body.msg_id is not _ABSENT and bytes(memoryview(body.msg_id)) != b"null":
        return Rejected(src, dest, None, ErrorCode.MALFORMED_REQUEST, "`$.body.msg_id` must be an integer")
    if body.type is _ABSENT:
        return Rejected(src, dest, msg_id, ErrorCode.MALFORMED_REQUEST, "missing field `$.body.type`")
    request_type = _string(body.type)
    if request_type is None:
        return Rejected(src, dest, msg_id, ErrorCode.MALFORMED_REQUEST, "`$.body.type` must be a string")
    if replies_known and (request_type in PEER_REPLY_TYPES or request_type in _REPLICA_TAGS):
        return Rejected(None, dest, None, ErrorCode.MALFORMED_REQUEST, f"ignored a malformed reply from {src}: {reason}")
    if request_type in _REPLICA_TAGS:  # a replica's message to a node not (yet) replicating: never answered
        return Rejected(None, dest, None, ErrorCode.NOT_SUPPORTED,
                        f"ignored a {request_type} from {src}: this node is not (yet) a replica in a cluster")
    if request_type not in REQUEST_TYPES:
        return Rejected(src, dest, msg_id, ErrorCode.NOT_SUPPORTED, f"unsupported message type {request_type!r}")
    if src is None:
        return Rejected(None, dest, msg_id, ErrorCode.MALFORMED_REQUEST, "`$.src` must be a string")
    wrong = (_wrong_field(loose.dest, str, "$.dest") or _wrong_field_of_body(REQUEST_TYPES[request_type], loose.body)
             or reason)
    return Rejected(src, dest, msg_id, ErrorCode.MALFORMED_REQUEST, f"invalid request: {wrong}")


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


def _wrong_field_of_body(request_type: type, raw_body: msgspec.Raw) -> str | None:
    """The first field of a request of `request_type` that is missing or has a value of the
    wrong kind, in the node's words; None if every field is right."""
    fields = msgspec.structs.fields(request_type)
    loose: Any = msgspec.json.decode(raw_body, type=_loose_struct_of(request_type))
    for field in fields:
        if field.name == "msg_id":  # looked at already, with the asker
            continue
        wrong = _wrong_field(getattr(loose, field.name), field.type, f"$.body.{field.name}", field.required)
        if wrong is not None:
            return wrong
    return None


_loose_structs: dict[type, type] = {}


def _loose_struct_of(request_type: type) -> type:
    """A struct with the fields of `request_type`, each as raw JSON text (absent if missing)."""
    if request_type not in _loose_structs:
        names = [(field.name, msgspec.Raw, _ABSENT) for field in msgspec.structs.fields(request_type)]
        _loose_structs[request_type] = msgspec.defstruct(f"Loose{request_type.__name__}", names)
    return _loose_structs[request_type]


def _wrong_field(raw: msgspec.Raw, expected: Any, path: str, required: bool = True) -> str | None:
    """What is wrong with the value at `path` (its JSON text `raw`, empty if absent) for a
    field of type `expected`, in the node's words; None if nothing is. Inside a list or an
    object no longer than NAMED_MEMBER_BYTES, the first wrong member is named."""
    if raw is _ABSENT or not raw:
        return f"missing field `{path}`" if required else None
    if expected is msgspec.Raw:  # any JSON value
        return None
    try:
        msgspec.json.decode(raw, type=expected)
        return None
    except msgspec.ValidationError:
        pass
    except (ValueError, RecursionError):  # not the value's kind but its text: the line's reason says it
        return None
    origin, args = get_origin(expected), get_args(expected)
    if origin in (list, dict) and len(raw) <= NAMED_MEMBER_BYTES:
        try:
            members = msgspec.json.decode(raw, type=dict[str, msgspec.Raw] if origin is dict else list[msgspec.Raw])
        except msgspec.ValidationError:
            members = None
        if isinstance(members, list):
            for at, member in enumerate(members):
                if (wrong := _wrong_field(member, args[0], f"{path}[{at}]")) is not None:
                    return wrong
        elif isinstance(members, dict):
            for key, member in members.items():
                name = msgspec.json.encode(key).decode()
                if (wrong := _wrong_field(member, args[1], f"{path}[{name}]")) is not None:
                    return wrong
    return f"`{path}` must be {_kind(expected)}"


def _kind(expected: Any) -> str:
    """A field's type in words."""
    origin, args = get_origin(expected), get_args(expected)
    if expected is str:
        return "a string"
    if expected is int:
        return "an integer"
    if origin is Annotated and args[0] is int:  # the only constrained integer is an offset
        return f"an offset: an integer from 0 to 2^{MAX_OFFSET.bit_length() - 1}"
    if origin is list:
        return f"a list, each item {_kind(args[0])}"
    if origin is dict:
        return f"an object, each value {_kind(args[1])}"
    return f"of type {expected}"


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
