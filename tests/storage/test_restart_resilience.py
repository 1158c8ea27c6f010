"""SIGKILL at random points under load, then restart on the same file: nothing acked is lost."""

from __future__ import annotations

import queue
import random
import threading
import time

import msgspec
import pytest

from support.logs import read_whole_log

KEYS = [str(i) for i in range(8)]


class AckLog:
    """What the node acknowledged before it died: offsets of sends, committed offsets."""

    def __init__(self) -> None:
        self.sends: dict[str, dict[int, int]] = {k: {} for k in KEYS}  # key -> offset -> value
        self.commits: dict[str, int] = {}


def stream_until_killed(node, rng: random.Random, acks: AckLog, next_value: dict[str, int]) -> None:
    """Pipeline sends and commits at the node, SIGKILL it at a random moment, record every ack."""
    pending: dict[int, tuple] = {}
    lock = threading.Lock()
    stop = threading.Event()
    ids = iter(range(1, 10**9))

    def write_forever() -> None:
        while not stop.is_set():
            lines = []
            with lock:
                for _ in range(rng.randint(1, 40)):
                    msg_id = next(ids)
                    key = rng.choice(KEYS)
                    if acks.sends[key] and rng.random() < 0.2:
                        offset = rng.choice(list(acks.sends[key]))
                        pending[msg_id] = ("commit", key, offset)
                        body = {"type": "commit_offsets", "offsets": {key: offset}, "msg_id": msg_id}
                    else:
                        value = next_value[key]
                        next_value[key] += 1
                        pending[msg_id] = ("send", key, value)
                        body = {"type": "send", "key": key, "msg": value, "msg_id": msg_id}
                    lines.append(msgspec.json.encode({"src": "c1", "dest": "n0", "body": body}))
            try:
                node.write(b"\n".join(lines) + b"\n")
            except (BrokenPipeError, ValueError, OSError):
                return
            time.sleep(rng.random() * 0.002)

    def record(line: bytes) -> None:
        body = msgspec.json.decode(line)["body"]
        with lock:
            kind, key, value = pending.pop(body["in_reply_to"])
            if body["type"] == "send_ok":
                assert kind == "send"
                assert body["offset"] not in acks.sends[key], "an offset was handed out twice"
                acks.sends[key][body["offset"]] = value
            elif body["type"] == "commit_offsets_ok":
                acks.commits[key] = max(acks.commits.get(key, -1), value)
            else:
                pytest.fail(f"unexpected reply under load: {body}")

    writer = threading.Thread(target=write_forever, daemon=True)
    writer.start()
    kill_at = time.monotonic() + rng.uniform(0.05, 0.8)
    while time.monotonic() < kill_at:
        try:
            line = node.lines.get(timeout=0.05)
        except queue.Empty:
            continue
        if line is not None:
            record(line)
    node.kill()
    stop.set()
    writer.join(5)
    # Replies already in the pipe when the node died were written after their COMMIT: they count.
    while (line := node.lines.get(timeout=5)) is not None:
        record(line)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_acked_sends_and_commits_survive_sigkill_and_offsets_keep_increasing(start_node, tmp_path, seed):
    rng = random.Random(seed)
    acks = AckLog()
    next_value = {k: 1 for k in KEYS}
    db = tmp_path / "log.db"
    for _round in range(3):
        stream_until_killed(start_node(db=db), rng, acks, next_value)

        node = start_node(db=db)
        for key in KEYS:
            log = read_whole_log(node, key)
            assert [offset for offset, _ in log] == list(range(len(log))), "offsets must be dense from 0"
            stored = dict((offset, value) for offset, value in log)
            for offset, value in acks.sends[key].items():
                assert stored.get(offset) == value, f"acked send {key}@{offset}={value} lost or changed"
            values = [value for _, value in log]
            assert len(values) == len(set(values)), "a message was stored twice"
            assert set(values) <= set(range(1, next_value[key])), "a value nobody sent was stored"
            top = max(acks.sends[key], default=-1)
            new_offset = node.request({"type": "send", "key": key, "msg": next_value[key]})["offset"]
            acks.sends[key][new_offset] = next_value[key]
            next_value[key] += 1
            assert new_offset == len(log) and new_offset > top
        committed = node.request({"type": "list_committed_offsets", "keys": KEYS})["offsets"]
        for key, offset in acks.commits.items():
            assert committed.get(key, -1) >= offset, f"acked commit {key}={offset} lost"
        node.kill()
    assert sum(len(s) for s in acks.sends.values()) > 50, "the load was too light to prove anything"


def test_acked_sends_survive_sigkill_while_a_checkpoint_copies_the_wal(start_node, tmp_path):
    """Large messages make the WAL cross its checkpoint size every few hundred sends; the
    node is killed the moment the database file grows, i.e. while a checkpoint writes it."""
    db = tmp_path / "log.db"
    node = start_node(db=db)
    size_at_start = db.stat().st_size
    payload = "p" * 16_000
    acked: dict[int, int] = {}
    value = 0
    while db.stat().st_size == size_at_start:
        node.write(b"".join(
            msgspec.json.encode({"src": "c1", "dest": "n0", "body": {
                "type": "send", "key": "big", "msg": [value + i, payload], "msg_id": value + i}}) + b"\n"
            for i in range(20)
        ))
        for _ in range(20):
            body = msgspec.json.decode(node.lines.get(timeout=10))["body"]
            acked[body["offset"]] = body["in_reply_to"]
        value += 20
        assert value < 20_000, "no checkpoint ever started"
    node.kill()
    while (line := node.lines.get(timeout=5)) is not None:
        body = msgspec.json.decode(line)["body"]
        acked[body["offset"]] = body["in_reply_to"]

    restarted = start_node(db=db)
    log = read_whole_log(restarted, "big")
    stored = {offset: msg[0] for offset, msg in log}
    assert all(stored.get(offset) == sent for offset, sent in acked.items()), "an acked send was lost"
    assert restarted.request({"type": "send", "key": "big", "msg": "after"})["offset"] == len(log)
