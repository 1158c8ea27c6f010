"""Storage that cannot be written: definite errors fast enough for the client, nothing applied."""

from __future__ import annotations

import time

import apsw
import msgspec


def test_a_write_lock_held_elsewhere_gets_every_send_a_definite_error_before_the_client_times_out(start_node, tmp_path):
    node = start_node()
    node.request({"type": "send", "key": "k", "msg": "before"})
    other = apsw.Connection(str(tmp_path / "log.db"))
    other.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        node.write(b"".join(
            msgspec.json.encode({"src": "c1", "dest": "n0",
                                 "body": {"type": "send", "key": "k", "msg": i, "msg_id": 10 + i}}) + b"\n"
            for i in range(4)
        ))
        replies = [node.read_message()["body"] for _ in range(4)]
        elapsed = time.monotonic() - started
        assert [r["code"] for r in replies] == [11, 11, 11, 11]
        assert elapsed < 4.5, f"answers took {elapsed:.1f} s: Maelstrom's client gives up after 5 s"
        polled = node.request({"type": "poll", "offsets": {"k": 0}})
        assert polled["msgs"] == {"k": [[0, "before"]]}, "reads must not wait for the write lock"
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert node.request({"type": "send", "key": "k", "msg": "after"})["offset"] == 1
    assert node.request({"type": "poll", "offsets": {"k": 0}})["msgs"] == {"k": [[0, "before"], [1, "after"]]}
