"""Bad input, case by case: the right error reply or stderr line, the node alive, data intact."""

from __future__ import annotations

import time

import pytest

from support.messages import message


def envelope(body, src="c1") -> bytes:
    return message(body, src=src)


NESTED = b"[" * 100_000 + b"]" * 100_000

# (case id, raw line without newline, expected reply (code, text fragment) or None, stderr fragment or None)
CASES = [
    ("not-json", b"garbage", None, "not a JSON message"),
    ("truncated-json", b'{"src":"c1","dest":"n0","body":{"type":"se', None, "not a JSON message"),
    ("invalid-utf8-in-body", b'{"src":"c1","dest":"n0","body":{"type":"send","key":"\xff","msg":1,"msg_id":1}}', (12, "invalid request: not valid UTF-8"), None),
    ("binary-garbage", b"\x00\x01\x02\xff\xfe", None, "not a JSON message"),
    ("top-level-array", b"[1,2,3]", None, "not a JSON message"),
    ("top-level-string", b'"hello"', None, "not a JSON message"),
    ("empty-object", b"{}", None, "missing field `$.body`"),
    ("src-not-a-string", envelope({"type": "send", "key": "k", "msg": 1, "msg_id": 1}, src=5), None, "`$.src` must be a string"),
    ("body-missing", b'{"src":"c1","dest":"n0"}', (12, "missing field `$.body`"), None),
    ("body-not-an-object", envelope([1, 2]), (12, "`$.body` must be an object"), None),
    ("msg-id-not-an-integer", envelope({"type": "send", "key": "k", "msg": 1, "msg_id": "7"}), (12, "`$.body.msg_id` must be an integer"), None),
    ("msg-id-string-and-type-unknown", envelope({"type": "txn", "msg_id": "7"}), (12, "`$.body.msg_id` must be an integer"), None),
    ("msg-id-float", envelope({"type": "send", "key": "k", "msg": 1, "msg_id": 1.5}), (12, "`$.body.msg_id` must be an integer"), None),
    ("type-missing", envelope({"key": "k", "msg": 1, "msg_id": 1}), (12, "missing field `$.body.type`"), None),
    ("type-not-a-string", envelope({"type": 3, "msg_id": 1}), (12, "`$.body.type` must be a string"), None),
    ("type-unknown", envelope({"type": "txn", "msg_id": 1}), (10, "unsupported message type 'txn'"), None),
    ("init-missing-node-id", envelope({"type": "init", "node_ids": ["n0"], "msg_id": 1}), (12, "missing field `$.body.node_id`"), None),
    ("send-key-missing", envelope({"type": "send", "msg": 1, "msg_id": 1}), (12, "missing field `$.body.key`"), None),
    ("send-key-not-a-string", envelope({"type": "send", "key": 7, "msg": 1, "msg_id": 1}), (12, "`$.body.key` must be a string"), None),
    ("send-key-null", envelope({"type": "send", "key": None, "msg": 1, "msg_id": 1}), (12, "`$.body.key` must be a string"), None),
    ("send-msg-missing", envelope({"type": "send", "key": "k", "msg_id": 1}), (12, "missing field `$.body.msg`"), None),
    ("poll-offsets-missing", envelope({"type": "poll", "msg_id": 1}), (12, "missing field `$.body.offsets`"), None),
    ("poll-offsets-a-list", envelope({"type": "poll", "offsets": [0], "msg_id": 1}), (12, "`$.body.offsets` must be an object, each value an offset"), None),
    ("poll-offset-negative", envelope({"type": "poll", "offsets": {"k": -1}, "msg_id": 1}), (12, '`$.body.offsets["k"]` must be an offset: an integer from 0 to 2^62'), None),
    ("poll-offset-float", envelope({"type": "poll", "offsets": {"k": 1.5}, "msg_id": 1}), (12, '`$.body.offsets["k"]` must be an offset: an integer from 0 to 2^62'), None),
    ("poll-offset-bool", envelope({"type": "poll", "offsets": {"k": True}, "msg_id": 1}), (12, '`$.body.offsets["k"]` must be an offset: an integer from 0 to 2^62'), None),
    ("poll-offset-string", envelope({"type": "poll", "offsets": {"ok": 0, "k": "0"}, "msg_id": 1}), (12, '`$.body.offsets["k"]` must be an offset: an integer from 0 to 2^62'), None),
    ("poll-offset-huge", envelope({"type": "poll", "offsets": {"k": 2**70}, "msg_id": 1}), (12, '`$.body.offsets["k"]` must be an offset: an integer from 0 to 2^62'), None),
    ("commit-offset-negative", envelope({"type": "commit_offsets", "offsets": {"k": -5}, "msg_id": 1}), (12, '`$.body.offsets["k"]` must be an offset: an integer from 0 to 2^62'), None),
    ("commit-offsets-null", envelope({"type": "commit_offsets", "offsets": None, "msg_id": 1}), (12, "`$.body.offsets` must be an object, each value an offset"), None),
    ("list-keys-not-a-list", envelope({"type": "list_committed_offsets", "keys": "k", "msg_id": 1}), (12, "`$.body.keys` must be a list, each item a string"), None),
    ("list-key-not-a-string", envelope({"type": "list_committed_offsets", "keys": ["k", 1], "msg_id": 1}), (12, "`$.body.keys[1]` must be a string"), None),
    ("invalid-utf8-past-the-first-mebibyte", b'{"src":"c1","dest":"n0","body":{"type":"send","msg":"' + b"x" * (2 << 20) + b'","key":"\xff","msg_id":1}}', (12, "invalid request: not valid UTF-8"), None),
    ("dest-missing", b'{"src":"c1","body":{"type":"send","key":"k","msg":1,"msg_id":1}}', (12, "missing field `$.dest`"), None),
    ("dest-not-a-string", b'{"src":"c1","dest":7,"body":{"type":"send","key":"k","msg":1,"msg_id":1}}', (12, "`$.dest` must be a string"), None),
    ("init-node-ids-not-a-list", envelope({"type": "init", "node_id": "n0", "node_ids": "n0", "msg_id": 1}), (12, "`$.body.node_ids` must be a list, each item a string"), None),
    ("offsets-given-twice", b'{"src":"c1","dest":"n0","body":{"type":"commit_offsets","offsets":{"k":-1},"offsets":null,"msg_id":1}}', (12, "`$.body.offsets` must be"), None),
    ("msg-invalid-utf8", b'{"src":"c1","dest":"n0","body":{"type":"send","key":"k","msg":"\xff\xfe","msg_id":1}}', (12, "`$.body.msg` is not valid UTF-8"), None),
    ("key-lone-surrogate", b'{"src":"c1","dest":"n0","body":{"type":"send","key":"\\ud800","msg":1,"msg_id":1}}', (12, "invalid request: not valid JSON"), None),
    ("src-lone-surrogate", b'{"src":"c\\ud800","dest":"n0","body":{"type":"send","key":"k","msg":1,"msg_id":1}}', None, "not a JSON message"),
    ("nested-100k-deep", NESTED, None, "not a JSON message"),
    ("msg-nested-100k-deep", b'{"src":"c1","dest":"n0","body":{"type":"send","key":"k","msg":' + NESTED + b',"msg_id":1}}', (12, "invalid request: JSON nested too deeply"), None),
    ("truncated-after-msg-id", b'{"src":"c1","dest":"n0","body":{"type":"send","msg_id":1,"key":"k","msg":"cut sh', (12, "invalid request: not valid JSON"), None),
    ("truncated-msg-id-twice", b'{"src":"c1","dest":"n0","body":{"type":"send","msg_id":1,"msg":{"msg_id":2,', None, "not a JSON message"),
    ("truncated-src-twice", b'{"src":"c1","dest":"n0","body":{"type":"send","msg_id":1,"msg":{"src":"c2"', None, "not a JSON message"),
]


@pytest.mark.parametrize(("line", "expected_reply", "expected_log"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_answered_or_logged_and_costs_nothing(start_node, line, expected_reply, expected_log):
    node = start_node()
    assert node.request({"type": "send", "key": "k", "msg": "before"})["offset"] == 0
    node.request({"type": "commit_offsets", "offsets": {"k": 0}})

    node.write(line + b"\n")
    if expected_reply is not None:
        code, fragment = expected_reply
        reply = node.read_message()
        assert reply["dest"] == "c1" and reply["src"] == "n0"
        assert reply["body"]["type"] == "error"
        assert reply["body"]["code"] == code
        assert fragment in reply["body"]["text"]
        if b'"msg_id":1}' in line:
            assert reply["body"]["in_reply_to"] == 1
    else:
        assert node.no_message_within(0.3), "a line nobody can be answered about must get no reply"
        deadline = time.monotonic() + 5
        while expected_log not in node.stderr() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert expected_log in node.stderr()

    assert node.alive()
    assert node.request({"type": "send", "key": "k", "msg": "after"})["offset"] == 1
    assert node.request({"type": "poll", "offsets": {"k": 0}})["msgs"] == {"k": [[0, "before"], [1, "after"]]}
    assert node.request({"type": "list_committed_offsets", "keys": ["k"]})["offsets"] == {"k": 0}


def test_blank_lines_are_ignored_silently(start_node):
    node = start_node()
    node.write(b"\n   \n\t\n")
    assert node.no_message_within(0.3)
    assert node.request({"type": "send", "key": "k", "msg": 1})["offset"] == 0
    assert "WARNING" not in node.stderr()


def test_a_line_over_the_limit_is_refused_to_its_asker_and_the_next_line_is_served(start_node):
    node = start_node("--max-line-bytes", "1000")
    node.write(envelope({"type": "send", "key": "k", "msg": "x" * 5000, "msg_id": 1}) + b"\n")
    reply = node.read_message()
    assert reply["body"]["in_reply_to"] == 1 and reply["body"]["code"] == 12
    assert "1000-byte line limit" in reply["body"]["text"]
    assert node.request({"type": "send", "key": "k", "msg": "small"})["offset"] == 0
    assert "skipped a line longer than 1000 bytes" in node.stderr()
    assert node.request({"type": "poll", "offsets": {"k": 0}})["msgs"] == {"k": [[0, "small"]]}


def test_a_poll_naming_100_000_keys_gets_a_bounded_reply(start_node):
    node = start_node("--poll-max-messages", "1000")
    for key in ["0", "1", "2"]:
        for value in range(5):
            node.request({"type": "send", "key": key, "msg": value})
    started = time.monotonic()
    reply = node.request({"type": "poll", "offsets": {str(i): 0 for i in range(100_000)}})
    assert time.monotonic() - started < 10
    assert reply["type"] == "poll_ok"
    assert reply["msgs"] == {"0": [[0, 0]], "1": [[0, 0]], "2": [[0, 0]]}, "1000 messages over 100,000 keys: one per key"
    few = node.request({"type": "poll", "offsets": {"0": 0, "1": 3}})
    assert few["msgs"] == {"0": [[o, o] for o in range(5)], "1": [[3, 3], [4, 4]]}


def test_bad_requests_in_the_same_write_as_init_are_answered_and_the_rest_applied(start_node):
    node = start_node(init=False)
    node.write(
        envelope({"type": "init", "node_id": "n0", "node_ids": ["n0"], "msg_id": 1}) + b"\n"
        + envelope({"type": "send", "key": "k", "msg": 1, "msg_id": 2}) + b"\n"
        + b'{"src":"c1","dest":"n0","body":{"type":"send","key":"k","msg":"\xff","msg_id":3}}\n'
        + b'{"src":"c1","dest":"n0","body":{"type":"commit_offsets","offsets":{"k":-1},"offsets":[],"msg_id":4}}\n'
        + envelope({"type": "send", "key": "k", "msg": 2, "msg_id": 5}) + b"\n"
    )
    replies = {r["body"]["in_reply_to"]: r["body"] for r in (node.read_message() for _ in range(5))}
    assert replies[1]["type"] == "init_ok"
    assert replies[2] == {"type": "send_ok", "offset": 0, "in_reply_to": 2}
    assert replies[3]["code"] == 12 and replies[4]["code"] == 12
    assert replies[5] == {"type": "send_ok", "offset": 1, "in_reply_to": 5}
    assert node.alive()


def test_an_unknown_request_mixed_into_a_batch_does_not_disturb_the_others(start_node):
    node = start_node()
    node.write(
        envelope({"type": "send", "key": "k", "msg": 1, "msg_id": 1}) + b"\n"
        + envelope({"type": "send", "key": 1, "msg": 1, "msg_id": 2}) + b"\n"
        + b"junk\n"
        + envelope({"type": "send", "key": "k", "msg": 2, "msg_id": 3}) + b"\n"
    )
    replies = {r["body"]["in_reply_to"]: r["body"] for r in (node.read_message() for _ in range(3))}
    assert replies[1] == {"type": "send_ok", "offset": 0, "in_reply_to": 1}
    assert replies[2]["code"] == 12
    assert replies[3] == {"type": "send_ok", "offset": 1, "in_reply_to": 3}
