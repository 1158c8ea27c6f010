"""Property tests: the decoder never raises, and storage keeps any JSON value and dense offsets."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from kafka_node import protocol
from kafka_node.storage import Storage

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
            {"type": st.sampled_from(sorted(protocol.REQUEST_TYPES) + ["nope", ""])},
            optional={"msg_id": anything, "key": anything, "msg": anything, "offsets": anything,
                      "keys": anything, "node_id": anything, "node_ids": anything},
        ),
        anything,
    )},
)


@given(st.binary(max_size=200))
def test_decoding_random_bytes_never_raises(line):
    assert isinstance(protocol.decode(line), protocol.Envelope | protocol.Rejected)


@given(request_shaped)
def test_decoding_request_shaped_json_gives_a_request_or_a_coded_rejection(message):
    decoded = protocol.decode(msgspec.json.encode(message))
    if isinstance(decoded, protocol.Rejected):
        assert decoded.code in (protocol.ErrorCode.MALFORMED_REQUEST, protocol.ErrorCode.NOT_SUPPORTED)
        body = message.get("body")
        if decoded.code == protocol.ErrorCode.NOT_SUPPORTED:
            assert body["type"] not in protocol.REQUEST_TYPES
        if decoded.msg_id is not None:
            assert decoded.msg_id == body["msg_id"]
    else:
        assert decoded.body.__struct_config__.tag == message["body"]["type"]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from(["a", "", "ü", "'; --"]), json_values), max_size=8), max_size=6),
       st.data())
def test_storage_keeps_every_value_at_dense_increasing_offsets(tmp_path_factory, batches, data):
    storage = Storage.open(str(tmp_path_factory.mktemp("db") / "log.db"))
    try:
        expected: dict[str, list] = {}
        for batch in batches:
            with storage.transaction():
                offsets = storage.append_many([(key, msgspec.json.encode(value).decode()) for key, value in batch])
            for (key, value), offset in zip(batch, offsets):
                assert offset == len(expected.setdefault(key, []))
                expected[key].append(value)
        found = msgspec.json.decode(storage.read_from({key: 0 for key in expected}, limit_per_key=1000))
        assert found == {k: [[o, v] for o, v in enumerate(values)] for k, values in expected.items()}
        starts = {key: data.draw(st.integers(0, len(values) + 2)) for key, values in expected.items()}
        starts["never-sent"] = 0
        limit = data.draw(st.integers(1, 5))
        window = msgspec.json.decode(storage.read_from(starts, limit_per_key=limit))
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
INIT_LINE = b'{"src":"c1","dest":"n0","body":{"type":"init","node_id":"n0","node_ids":["n0"],"msg_id":0}}'
REPLY_TYPES = {"init_ok", "send_ok", "poll_ok", "commit_offsets_ok", "list_committed_offsets_ok", "error"}


@settings(max_examples=150, deadline=None)
@given(st.lists(raw_lines, max_size=12), st.booleans())
def test_a_batch_of_hostile_lines_never_raises_and_every_answerable_line_gets_one_reply(tmp_path_factory, lines, init_first):
    from kafka_node.node import Node

    storage = Storage.open(str(tmp_path_factory.mktemp("db") / "log.db"))
    try:
        node = Node(storage, poll_max_per_key=10, max_line_bytes=1 << 20)
        batch = ([INIT_LINE] if init_first else []) + lines
        out = node.answer_batch(batch)
        replies = [msgspec.json.decode(line) for line in out.splitlines()]
        answerable = [d for d in map(protocol.decode, (line for line in batch if line.strip()))
                      if isinstance(d, protocol.Envelope) or d.src is not None]
        assert len(replies) == len(answerable)
        for reply in replies:
            assert set(reply) == {"src", "dest", "body"}
            assert reply["body"]["type"] in REPLY_TYPES
            if reply["body"]["type"] == "error":
                assert reply["body"]["code"] in (10, 11, 12)
    finally:
        storage.close()
