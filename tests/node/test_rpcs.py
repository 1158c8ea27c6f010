"""The four RPCs and init, through the installed maelstrom-kafka in a child process."""

from __future__ import annotations

import msgspec
import pytest

from support.node_child import child_env, run_node


def test_init_reply_comes_from_the_node_id_to_the_asker(start_node):
    node = start_node(init=False)
    node.send_message({"type": "init", "node_id": "n7", "node_ids": ["n7"], "msg_id": 41}, src="c9")
    reply = node.read_message()
    assert reply == {"src": "n7", "dest": "c9", "body": {"type": "init_ok", "in_reply_to": 41}}


def test_send_hands_out_increasing_offsets_per_key(start_node):
    node = start_node()
    offsets = [node.request({"type": "send", "key": k, "msg": i})["offset"] for i, k in enumerate("aabab")]
    assert offsets == [0, 1, 0, 2, 1]


def test_poll_returns_messages_from_the_asked_offset_ascending_and_contiguous(start_node):
    node = start_node()
    for value in range(5):
        node.request({"type": "send", "key": "k", "msg": value * 10})
    reply = node.request({"type": "poll", "offsets": {"k": 2, "missing": 0}})
    assert reply == {"type": "poll_ok", "msgs": {"k": [[2, 20], [3, 30], [4, 40]]}, "in_reply_to": reply["in_reply_to"]}


def test_poll_past_the_end_and_of_no_keys_is_empty(start_node):
    node = start_node()
    node.request({"type": "send", "key": "k", "msg": 1})
    assert node.request({"type": "poll", "offsets": {"k": 5}})["msgs"] == {}
    assert node.request({"type": "poll", "offsets": {}})["msgs"] == {}


def test_poll_is_capped_per_key_by_the_flag(start_node):
    node = start_node("--poll-max-per-key", "3")
    for value in range(10):
        node.request({"type": "send", "key": "k", "msg": value})
    msgs = node.request({"type": "poll", "offsets": {"k": 4}})["msgs"]
    assert msgs == {"k": [[4, 4], [5, 5], [6, 6]]}


def test_a_poll_whose_messages_pass_the_byte_budget_gets_the_prefix_that_fits(start_node):
    node = start_node("--poll-max-bytes", "90")
    for key in ("a", "b"):
        for value in range(4):
            node.request({"type": "send", "key": key, "msg": f"{key}{value}-" + "x" * 20})  # 25 bytes of JSON each
    msgs = node.request({"type": "poll", "offsets": {"b": 1, "a": 0}})["msgs"]
    assert msgs == {"b": [[1, "b1-" + "x" * 20], [2, "b2-" + "x" * 20], [3, "b3-" + "x" * 20]]}
    msgs = node.request({"type": "poll", "offsets": {"a": 2, "b": 3}})["msgs"]
    assert list(msgs) == ["a", "b"] and len(msgs["a"]) == 2 and len(msgs["b"]) == 1


def test_poll_naming_two_thousand_keys_returns_each_keys_messages(start_node):
    node = start_node()
    keys = [str(i) for i in range(2000)]
    for start in range(0, len(keys), 500):
        lines = b"".join(
            msgspec.json.encode({"src": "c1", "dest": "n0",
                                 "body": {"type": "send", "key": k, "msg": int(k), "msg_id": i}}) + b"\n"
            for i, k in enumerate(keys[start:start + 500])
        )
        node.write(lines)
        for _ in range(500):
            assert node.read_message()["body"]["type"] == "send_ok"
    msgs = node.request({"type": "poll", "offsets": {k: 0 for k in keys}})["msgs"]
    assert msgs == {k: [[0, int(k)]] for k in keys}


def test_commit_offsets_never_move_backwards_and_unknown_keys_are_omitted(start_node):
    node = start_node()
    assert node.request({"type": "commit_offsets", "offsets": {"a": 5, "b": 2}})["type"] == "commit_offsets_ok"
    assert node.request({"type": "commit_offsets", "offsets": {"a": 3, "b": 4}})["type"] == "commit_offsets_ok"
    reply = node.request({"type": "list_committed_offsets", "keys": ["a", "b", "never"]})
    assert reply["type"] == "list_committed_offsets_ok"
    assert reply["offsets"] == {"a": 5, "b": 4}


MESSAGE_VALUES = [
    None, True, False, 0, -1, 1.5, -2.5e-300, 12345678901234567890123456789, "text", "", "ünïcødé 🎉",
    [], {}, [1, [2, [3, {"deep": [None]}]]], {"nested": {"object": {"with": ["a", 1, None, 2.25]}}},
    'quote " backslash \\ newline \n tab \t',
]


@pytest.mark.parametrize("value", MESSAGE_VALUES, ids=repr)
def test_any_json_value_round_trips_exactly(start_node, value):
    node = start_node()
    offset = node.request({"type": "send", "key": "k", "msg": value})["offset"]
    assert node.request({"type": "poll", "offsets": {"k": offset}})["msgs"] == {"k": [[offset, value]]}


def test_number_text_round_trips_byte_for_byte(start_node):
    node = start_node()
    node.write(b'{"src":"c1","dest":"n0","body":{"type":"send","key":"k","msg":1.10e+2,"msg_id":1}}\n')
    assert node.read_message()["body"]["offset"] == 0
    node.write(b'{"src":"c1","dest":"n0","body":{"type":"poll","offsets":{"k":0},"msg_id":2}}\n')
    raw = node.lines.get(timeout=10)
    assert b"[[0,1.10e+2]]" in raw


@pytest.mark.parametrize("key", ["", "ünïcødé", "🔑🗝️", "'); DROP TABLE messages; --", "a\"b\\c", " ", "0" * 1000])
def test_unusual_keys_are_kept_apart_and_round_trip(start_node, key):
    node = start_node()
    node.request({"type": "send", "key": "plain", "msg": "other"})
    assert node.request({"type": "send", "key": key, "msg": "mine"})["offset"] == 0
    node.request({"type": "commit_offsets", "offsets": {key: 0}})
    assert node.request({"type": "poll", "offsets": {key: 0}})["msgs"] == {key: [[0, "mine"]]}
    assert node.request({"type": "list_committed_offsets", "keys": [key]})["offsets"] == {key: 0}
    assert node.request({"type": "poll", "offsets": {"plain": 0}})["msgs"] == {"plain": [[0, "other"]]}


def test_one_mebibyte_message_round_trips(start_node):
    node = start_node()
    big = "x" * (1 << 20)
    node.request({"type": "send", "key": "big", "msg": {"payload": big}})
    assert node.request({"type": "poll", "offsets": {"big": 0}})["msgs"] == {"big": [[0, {"payload": big}]]}


def test_requests_before_init_get_temporarily_unavailable(start_node):
    node = start_node(init=False)
    reply = node.request({"type": "send", "key": "k", "msg": 1})
    assert reply["type"] == "error" and reply["code"] == 11
    node.init()
    assert node.request({"type": "send", "key": "k", "msg": 1})["offset"] == 0


def test_a_request_without_msg_id_is_applied_and_answered_without_in_reply_to(start_node):
    node = start_node()
    node.send_message({"type": "send", "key": "k", "msg": "fire and forget"})
    reply = node.read_message()
    assert reply["body"] == {"type": "send_ok", "offset": 0}
    assert node.request({"type": "poll", "offsets": {"k": 0}})["msgs"] == {"k": [[0, "fire and forget"]]}


def test_many_requests_written_at_once_are_all_answered_in_order(start_node):
    node = start_node()
    lines = b"".join(
        msgspec.json.encode({"src": "c1", "dest": "n0",
                             "body": {"type": "send", "key": "k", "msg": i, "msg_id": 100 + i}}) + b"\n"
        for i in range(1000)
    )
    node.write(lines)
    replies = [node.read_message()["body"] for _ in range(1000)]
    assert [r["in_reply_to"] for r in replies] == list(range(100, 1100))
    assert [r["offset"] for r in replies] == list(range(1000))


def test_a_poll_after_a_send_in_the_same_write_sees_it(start_node):
    node = start_node()
    node.write(
        b'{"src":"c1","dest":"n0","body":{"type":"send","key":"k","msg":"v","msg_id":1}}\n'
        b'{"src":"c2","dest":"n0","body":{"type":"poll","offsets":{"k":0},"msg_id":1}}\n'
    )
    first, second = node.read_message(), node.read_message()
    assert first["dest"] == "c1" and first["body"]["type"] == "send_ok"
    assert second["dest"] == "c2" and second["body"]["msgs"] == {"k": [[0, "v"]]}


def test_stdout_carries_only_protocol_messages(tmp_path):
    requests = b"".join([
        b'{"src":"c1","dest":"n0","body":{"type":"init","node_id":"n0","node_ids":["n0"],"msg_id":1}}\n',
        b"not json at all\n",
        b'{"src":"c1","dest":"n0","body":{"type":"send","key":"k","msg":1,"msg_id":2}}\n',
        b'{"src":"c1","dest":"n0","body":{"type":"bogus","msg_id":3}}\n',
        b"\xff\xfe\x00binary\n",
        b'{"src":"c1","dest":"n0","body":{"type":"poll","offsets":{"k":0},"msg_id":4}}',  # no final newline
    ])
    done = run_node("--db", str(tmp_path / "log.db"), stdin=requests, env=child_env())
    assert done.returncode == 0, done.stderr
    replies = [msgspec.json.decode(line) for line in done.stdout.splitlines()]
    answered = {r["body"]["in_reply_to"]: r["body"]["type"] for r in replies}
    assert answered == {1: "init_ok", 2: "send_ok", 3: "error", 4: "poll_ok"} and len(replies) == 4
    assert all(set(r) == {"src", "dest", "body"} for r in replies)


def test_offsets_up_to_2_to_the_62_are_accepted_and_larger_ones_refused(start_node):
    """The bound keeps offset + poll limit inside SQLite's 64-bit integers; below it every
    offset is a valid request."""
    node = start_node()
    assert node.request({"type": "commit_offsets", "offsets": {"k": 2**62}})["type"] == "commit_offsets_ok"
    assert node.request({"type": "list_committed_offsets", "keys": ["k"]})["offsets"] == {"k": 2**62}
    assert node.request({"type": "poll", "offsets": {"k": 2**62}})["msgs"] == {}
    refused = node.request({"type": "poll", "offsets": {"k": 2**62 + 1}})
    assert (refused["type"], refused["code"]) == ("error", 12)
