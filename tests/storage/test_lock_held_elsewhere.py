"""Storage that cannot be written: definite errors fast enough for the client, nothing applied."""

from __future__ import annotations

import time

import apsw
import msgspec


def test_a_write_lock_held_elsewhere_gets_sends_a_definite_error_in_time_and_reads_answered(start_node, tmp_path):
    node = start_node()
    node.request({"type": "send", "key": "k", "msg": "before"})
    other = apsw.Connection(str(tmp_path / "log.db"))
    other.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        bodies = [{"type": "send", "key": "k", "msg": i, "msg_id": 10 + i} for i in range(4)]
        bodies.append({"type": "poll", "offsets": {"k": 0}, "msg_id": 20})  # in the same batch
        node.write(b"".join(msgspec.json.encode({"src": "c1", "dest": "n0", "body": body}) + b"\n" for body in bodies))
        replies = {reply["in_reply_to"]: reply for reply in (node.read_message()["body"] for _ in bodies)}
        elapsed = time.monotonic() - started
        assert [replies[10 + i]["code"] for i in range(4)] == [11, 11, 11, 11]
        assert elapsed < 4.5, f"answers took {elapsed:.1f} s: Maelstrom's client gives up after 5 s"
        assert replies[20]["msgs"] == {"k": [[0, "before"]]}, "a read beside the refused writes is answered"
        polled = node.request({"type": "poll", "offsets": {"k": 0}})
        assert polled["msgs"] == {"k": [[0, "before"]]}, "reads must not wait for the write lock"
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert node.request({"type": "send", "key": "k", "msg": "after"})["offset"] == 1
    assert node.request({"type": "poll", "offsets": {"k": 0}})["msgs"] == {"k": [[0, "before"], [1, "after"]]}
