"""Property tests: the decoder and the node against an oracle written from the protocol's
rules (never from the decoder itself), and storage keeping any JSON value at dense offsets."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from kafka_node import decoding, protocol
from kafka_node.rpcs import PollLimits
from kafka_node.storage import Durability, Storage

from support.in_process import log_file, serve_with
from support.messages import INIT

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
anything = st.one_of(json_values, st.integers(min_value=-(2**70), max_value=2**70))
request_shaped = st.fixed_dictionaries(
    {"src": st.one_of(st.just("c1"), anything), "dest": st.one_of(st.just("n0"), anything)},
    optional={"body": st.one_of(
        st.fixed_dictionaries(
            {"type": st.sampled_from([*sorted(protocol.REQUEST_TYPES), "nope", ""])},
            optional={"msg_id": anything, "key": anything, "msg": anything, "offsets": anything,
                      "keys": anything, "node_id": anything, "node_ids": anything},
        ),
        anything,
    )},
)


@given(st.binary(max_size=200))
def test_decoding_random_bytes_never_raises(line):
    assert isinstance(decoding.decode(line), protocol.Envelope | protocol.Rejected)


class Expected(NamedTuple):
    """What the protocol says a line must get: a request of this type, an error with this
    code addressed to `src` (None: nobody can be answered), or, when `ambiguous`, either."""

    request_type: str | None = None
    code: int | None = None
    src: str | None = None
    msg_id: int | None = None
    ambiguous: bool = False


def _is_integer(value: Any) -> bool:
    return type(value) is int  # JSON sets no bound on a msg_id, and neither does the node


def _is_offset_map(value: Any) -> bool:
    return isinstance(value, dict) and all(type(v) is int and 0 <= v <= 2**62 for v in value.values())


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


#: The fields each request type must have, and what makes each valid (the schema of the
#: Maelstrom kafka workload, written out here independently of the node's message types).
REQUIRED_FIELDS = {
    "init": {"node_id": lambda v: isinstance(v, str), "node_ids": _is_str_list},
    "send": {"key": lambda v: isinstance(v, str), "msg": lambda v: True},
    "poll": {"offsets": _is_offset_map},
    "commit_offsets": {"offsets": _is_offset_map},
    "list_committed_offsets": {"keys": _is_str_list},
}


def expected_for(message: Any) -> Expected:
    """The oracle: what a message (already parsed as JSON) must get."""
    if not isinstance(message, dict):
        return Expected(code=12)
    src = message.get("src") if isinstance(message.get("src"), str) else None
    body = message.get("body")
    if not isinstance(body, dict):
        return Expected(code=12, src=src)
    if "msg_id" in body and body["msg_id"] is not None and not _is_integer(body["msg_id"]):
        return Expected(code=12, src=src)
    msg_id = body.get("msg_id")
    kind = body.get("type")
    if not isinstance(kind, str):
        return Expected(code=12, src=src, msg_id=msg_id)
    if kind not in REQUIRED_FIELDS:
        return Expected(code=10, src=src, msg_id=msg_id)
    if src is None:
        return Expected(code=12, msg_id=msg_id)
    fields = REQUIRED_FIELDS[kind]
    if not isinstance(message.get("dest"), str) or not all(
            name in body and valid(body[name]) for name, valid in fields.items()):
        return Expected(code=12, src=src, msg_id=msg_id)
    return Expected(request_type=kind, src=src, msg_id=msg_id)


@given(request_shaped)
def test_decoding_request_shaped_json_does_what_the_protocol_says(message):
    expected = expected_for(message)
    decoded = decoding.decode(msgspec.json.encode(message))
    if expected.request_type is not None:
        assert isinstance(decoded, protocol.Envelope)
        assert decoded.body.__struct_config__.tag == expected.request_type
        assert (decoded.src, decoded.body.msg_id) == (expected.src, expected.msg_id)
    else:
        assert isinstance(decoded, protocol.Rejected)
        assert decoded.src == expected.src
        if expected.src is not None:  # a rejection nobody hears may carry any code
            assert (decoded.code, decoded.msg_id) == (expected.code, expected.msg_id)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from(["a", "", "ü", "'; --"]), json_values), max_size=8), max_size=6),
       st.data())
def test_storage_keeps_every_value_at_dense_increasing_offsets(tmp_path_factory, batches, data):
    storage = Storage.open(str(tmp_path_factory.mktemp("db") / "log.db"))
    try:
        expected: dict[str, list] = {}
        for batch in batches:
            with storage.log.transaction():
                offsets = storage.log.append_many([(key, msgspec.json.encode(value).decode()) for key, value in batch])
            for (key, value), offset in zip(batch, offsets, strict=True):
                assert offset == len(expected.setdefault(key, []))
                expected[key].append(value)
        found = msgspec.json.decode(storage.log.read_from({key: 0 for key in expected}, limit_per_key=1000, max_bytes=1 << 30))
        assert found == {k: [[o, v] for o, v in enumerate(values)] for k, values in expected.items()}
        starts = {key: data.draw(st.integers(0, len(values) + 2)) for key, values in expected.items()}
        starts["never-sent"] = 0
        limit = data.draw(st.integers(1, 5))
        window = msgspec.json.decode(storage.log.read_from(starts, limit_per_key=limit, max_bytes=1 << 30))
        assert window == {
            key: [[o, expected[key][o]] for o in range(start, min(start + limit, len(expected[key])))]
            for key, start in starts.items() if key in expected and start < len(expected[key])
        }
    finally:
        storage.close()


def _with_duplicated_field(encoded: bytes) -> bytes:
    """The same object with its first field given again at the end (JSON allows it)."""
    if not encoded.startswith(b'{"') or encoded == b"{}":
        return encoded
    first_field = encoded[1:].split(b",", 1)[0].rstrip(b"}")
    return encoded[:-1] + b"," + first_field + b"}"


raw_lines = st.one_of(
    st.binary(max_size=120).map(lambda b: b.replace(b"\n", b" ")),
    request_shaped.map(msgspec.json.encode),
    request_shaped.map(lambda m: _with_duplicated_field(msgspec.json.encode(m))),
    st.tuples(request_shaped, st.integers(0, 60), st.sampled_from([b"\xff", b"\\ud800", b'"', b"}", b"\x00"]))
    .map(lambda t: (lambda e: e[:t[1]] + t[2] + e[t[1]:])(msgspec.json.encode(t[0]))),
)
INIT_LINE = INIT.rstrip(b"\n")
OK_REPLIES = {"init": "init_ok", "send": "send_ok", "poll": "poll_ok", "commit_offsets": "commit_offsets_ok",
              "list_committed_offsets": "list_committed_offsets_ok"}


def expected_for_line(line: bytes) -> Expected | None:
    """The oracle for a raw line: None for a blank one (no reply); for text that is not
    strict JSON (RFC 8259: UTF-8, no NaN, no lone surrogate), at most one error 12; for a
    field given twice, at most one reply; else `expected_for` its value."""
    if not line.strip():
        return None
    duplicated = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal duplicated
        duplicated |= len({k for k, _ in items}) < len(items)
        return dict(items)

    def refuse_constant(name: str) -> Any:
        raise ValueError(name)

    try:
        message = json.loads(line.decode("utf-8"), object_pairs_hook=pairs, parse_constant=refuse_constant)
        json.dumps(message, ensure_ascii=False).encode("utf-8")  # a lone surrogate cannot be encoded
    except (ValueError, RecursionError):
        return Expected(code=12, ambiguous=True)
    expected = expected_for(message)
    return expected._replace(ambiguous=True) if duplicated else expected


def probe(number: int) -> bytes:
    """A request that reads nothing, sent after each line: its reply marks the end of that line's."""
    return msgspec.json.encode({"src": "probe", "dest": "n0",
                                "body": {"type": "list_committed_offsets", "keys": [], "msg_id": number}}) + b"\n"


def replies_line_by_line(tmp_path_factory, lines: list[bytes]) -> list[list[dict[str, Any]]]:
    """Each line's replies from the real serve loop (durability normal: no sync to wait for, so
    every reply leaves in the order of its request, before the probe written after it)."""
    log = log_file(tmp_path_factory.mktemp("db") / "log.db", durability=Durability.NORMAL)
    replies: list[list[dict[str, Any]]] = []

    def client(to_node, from_node) -> None:
        for number, line in enumerate(lines):
            to_node.write(line + b"\n" + probe(number))
            got: list[dict[str, Any]] = []
            while (reply := msgspec.json.decode(from_node.readline()))["dest"] != "probe":
                got.append(reply)
            assert reply["body"]["in_reply_to"] == number
            replies.append(got)

    try:
        assert serve_with(log, client, PollLimits(per_key=10)) == 0
    finally:
        log.close()
    return replies


@settings(max_examples=150, deadline=None)
@given(st.lists(raw_lines, max_size=12), st.booleans())
def test_every_hostile_line_gets_what_the_protocol_says_and_nothing_raises(tmp_path_factory, lines, init_first):
    lines = ([INIT_LINE] if init_first else []) + lines
    initialised = False
    for line, replies in zip(lines, replies_line_by_line(tmp_path_factory, lines), strict=True):
        expected = expected_for_line(line)
        if expected is None:
            assert replies == []
            continue
        for reply in replies:
            assert set(reply) == {"src", "dest", "body"}
        if expected.ambiguous:
            assert len(replies) <= 1
            if replies and replies[0]["body"]["type"] == "error":
                assert replies[0]["body"]["code"] in (10, 11, 12)
            initialised |= bool(replies) and replies[0]["body"]["type"] == "init_ok"
            continue
        if expected.src is None:
            assert replies == [], "nobody to answer: the line is only logged"
            continue
        assert len(replies) == 1, (line, replies)
        reply = replies[0]
        assert reply["dest"] == expected.src
        assert reply["body"].get("in_reply_to") == expected.msg_id
        if expected.request_type is None:
            assert (reply["body"]["type"], reply["body"]["code"]) == ("error", expected.code)
        elif expected.request_type != "init" and not initialised:
            assert (reply["body"]["type"], reply["body"]["code"]) == ("error", 11)
        else:
            assert reply["body"]["type"] == OK_REPLIES[expected.request_type]
            initialised |= expected.request_type == "init"
