"""The pieces behind the soak run: every hostile line is one line that no correct node may
accept (and ours refuses without a change to its log), replies to the hostile client are
tallied, and the node's memory is read from /proc, or skipped with a note without it."""

from __future__ import annotations

import os
import random
from pathlib import Path

import msgspec
import pytest

from kafka_node import decoding, protocol
from kafka_node.maelstrom.hostile import FOREIGN_KEYS, HOSTILE_CLIENT, HostileLines, HostileTally
from kafka_node.maelstrom.memory import MemoryLog
from kafka_node.maelstrom.network import InvalidOutput


def hostile_lines(seed: int, count: int) -> list[tuple[str, bytes, int]]:
    lines = HostileLines(random.Random(seed))
    return [lines.next_line() for _ in range(count)]


def test_hostile_lines_are_single_lines_of_every_kind_and_repeat_with_the_seed():
    lines = hostile_lines(1, 2000)
    assert {kind for kind, _, _ in lines} == set(HostileLines(random.Random(0)).kinds)
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for _, line, _ in lines)
    assert lines == hostile_lines(1, 2000) != hostile_lines(2, 2000)
    assert any(len(line) > 20_000 for kind, line, _ in lines if kind == "deep-nesting")


def test_no_hostile_line_is_a_valid_request():
    # The node's own decoder refuses every one (blank lines are skipped before decoding).
    for kind, line, _ in hostile_lines(3, 3000):
        if line.strip():
            assert isinstance(decoding.decode(line.rstrip(b"\n")), protocol.Rejected), (kind, line[:200])


def test_our_node_answers_every_hostile_request_with_an_error_and_its_log_is_unchanged(start_node):
    node = start_node()
    for _, line, _ in hostile_lines(4, 600):
        node.write(line)
    node.send_message({"type": "list_committed_offsets", "keys": [*FOREIGN_KEYS, "0", "1"], "msg_id": 1})
    codes = []
    while (reply := node.read_message())["dest"] == HOSTILE_CLIENT:
        assert reply["body"]["type"] == "error", reply
        codes.append(reply["body"]["code"])
    assert reply["body"] == {"type": "list_committed_offsets_ok", "offsets": {}, "in_reply_to": 1}
    assert set(codes) == {10, 12} and len(codes) > 200
    polled = node.request({"type": "poll", "offsets": dict.fromkeys([*FOREIGN_KEYS, "0", "1"], 0)})
    assert polled == {"type": "poll_ok", "msgs": {}, "in_reply_to": 2}
    assert node.alive()


def reply(body: dict) -> msgspec.Raw:
    return msgspec.Raw(msgspec.json.encode(body))


def test_replies_to_the_hostile_client_are_counted_by_code_and_acceptances_kept():
    tally = HostileTally(0.05)
    tally.sent("bad-offset", b'{"src":"h1","body":{"msg_id":1}}\n', 1, 0.5)
    tally.sent("unknown-type", b'{"src":"h1","body":{"msg_id":2}}\n', 2, 0.6)
    tally.received(reply({"type": "error", "code": 12, "text": "bad", "in_reply_to": 1}), 0.7)
    tally.received(reply({"type": "error", "code": 12, "text": "no in_reply_to"}), 0.7)
    tally.received(reply({"type": "send_ok", "offset": 0, "in_reply_to": 2}), 0.8)
    assert tally.described() == {
        "every": 0.05, "client": "h1", "sent": 2, "sent_by_kind": {"bad-offset": 1, "unknown-type": 1},
        "replies": 3, "replies_by_code": {"12": 2, "send_ok": 1}, "accepted": 1,
    }
    assert [line.get("reply") for line in tally.lines] == ["12", "send_ok"]
    assert tally.accepted[0]["kind"] == "unknown-type" and '"msg_id":2' in tally.accepted[0]["request"]
    with pytest.raises(InvalidOutput):
        tally.received(reply({"code": 12}), 0.9)  # no type: not a message


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_memory_log_reads_vmrss_and_vmhwm_of_a_running_process(tmp_path):
    log = MemoryLog(tmp_path / "memory.csv")
    log.sample(os.getpid(), 0.25)
    log.sample(os.getpid(), 1.25)
    log.sample(2**22 + 1, 2.0)  # no such process (above Linux's pid_max): nothing recorded
    log.close()
    rows = (tmp_path / "memory.csv").read_text().splitlines()
    assert rows[0] == "time_s,pid,rss_kib,hwm_kib" and len(rows) == 3
    assert rows[1].startswith(f"0.25,{os.getpid()},")
    rss, hwm = map(int, rows[1].split(",")[2:])
    assert 0 < rss <= hwm
    described = log.described()
    assert described["samples"] == 2 and described["processes"] == 1 and described["file"] == "memory.csv"


def test_memory_is_skipped_with_a_note_without_proc(tmp_path):
    log = MemoryLog(tmp_path / "memory.csv", proc=tmp_path / "no-proc")
    log.sample(os.getpid(), 0.5)
    log.close()
    assert not (tmp_path / "memory.csv").exists()
    assert "memory not sampled" in log.described()["note"]
