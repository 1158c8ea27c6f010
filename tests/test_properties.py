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
@given(st.lists(st.tuples(st.sampled_from(["a", "", "ü", "'; --"]), json_values), max_size=30))
def test_storage_keeps_every_value_at_dense_increasing_offsets(tmp_path_factory, appends):
    storage = Storage.open(str(tmp_path_factory.mktemp("db") / "log.db"))
    try:
        expected: dict[str, list] = {}
        with storage.transaction():
            for key, value in appends:
                offset = storage.append(key, msgspec.json.encode(value).decode())
                assert offset == len(expected.setdefault(key, []))
                expected[key].append(value)
        found = storage.read_from({key: 0 for key in expected}, limit_per_key=1000)
        assert {k: [(o, msgspec.json.decode(m)) for o, m in v] for k, v in found.items()} == {
            k: list(enumerate(v)) for k, v in expected.items()
        }
    finally:
        storage.close()
