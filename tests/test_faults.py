"""Failed writes and fsyncs, injected by a VFS that wraps SQLite's real one, and a full disk."""

from __future__ import annotations

import os
import subprocess
import uuid

import apsw
import msgspec
import pytest

from kafka_node.node import Node
from kafka_node.storage import Storage


class FaultyFile(apsw.VFSFile):
    """A real file whose writes or syncs fail while the VFS says so."""

    def __init__(self, vfs: FaultyVFS, name, flags) -> None:
        self.vfs = vfs
        super().__init__("", name, flags)

    def xWrite(self, data, offset) -> None:
        if self.vfs.failing == "write":
            raise apsw.IOError("injected write failure")
        super().xWrite(data, offset)

    def xSync(self, flags) -> None:
        if self.vfs.failing == "sync":
            raise apsw.IOError("injected fsync failure")
        super().xSync(flags)


class FaultyVFS(apsw.VFS):
    """SQLite's default VFS, with writes or fsyncs made to fail on demand."""

    def __init__(self) -> None:
        self.name = f"faulty-{uuid.uuid4().hex}"
        self.failing: str | None = None
        super().__init__(self.name, "")

    def xOpen(self, name, flags):
        return FaultyFile(self, name, flags)


def line(body: dict) -> bytes:
    return msgspec.json.encode({"src": "c1", "dest": "n0", "body": body})


INIT = line({"type": "init", "node_id": "n0", "node_ids": ["n0"], "msg_id": 0})


def replies(out: bytes) -> list[dict]:
    return [msgspec.json.decode(raw)["body"] for raw in out.splitlines()]


def all_messages(path) -> dict[str, list]:
    storage = Storage.open(str(path))
    try:
        keys = [k for (k,) in storage.conn.execute("SELECT key FROM log_keys")]
        return msgspec.json.decode(storage.read_from({k: 0 for k in keys}, 1_000_000))
    finally:
        storage.close()


@pytest.mark.parametrize("failing", ["sync", "write"])
def test_no_request_of_a_batch_whose_commit_fails_is_acknowledged_and_the_node_stops(tmp_path, failing):
    vfs = FaultyVFS()
    db = tmp_path / "log.db"
    storage = Storage.open(str(db), vfs=vfs.name)
    node = Node(storage, poll_max_per_key=100, max_line_bytes=1 << 20)
    acked = replies(node.answer_batch([INIT] + [line({"type": "send", "key": "k", "msg": i, "msg_id": i}) for i in range(1, 4)]))
    assert [r["offset"] for r in acked[1:]] == [0, 1, 2]

    vfs.failing = failing
    batch = [line({"type": "send", "key": "k", "msg": i, "msg_id": i}) for i in range(4, 8)]
    batch.append(line({"type": "commit_offsets", "offsets": {"k": 2}, "msg_id": 8}))
    failed = replies(node.answer_batch(batch))
    assert [r["type"] for r in failed] == ["error"] * 5
    assert {r["code"] for r in failed} == {13}, "the write may have reached the disk: only 13 is honest"
    assert node.storage_untrusted, "after an I/O error at COMMIT the node must stop serving"
    vfs.failing = None
    storage.abandon()

    recovered = all_messages(db)["k"]
    assert recovered[:3] == [[0, 1], [1, 2], [2, 3]], "what was acknowledged before must survive"
    assert [o for o, _ in recovered] == list(range(len(recovered))), "offsets stay dense after recovery"


def test_after_a_failed_commit_the_rest_of_the_read_is_not_applied(tmp_path):
    """With --max-batch 1 one read holds several transactions: after the first fails at
    COMMIT, the others must not be tried on a connection whose cache cannot be trusted."""
    vfs = FaultyVFS()
    db = tmp_path / "log.db"
    storage = Storage.open(str(db), vfs=vfs.name)
    node = Node(storage, poll_max_per_key=100, max_line_bytes=1 << 20, max_batch=1)
    node.answer_batch([INIT, line({"type": "send", "key": "k", "msg": "acked", "msg_id": 1})])
    vfs.failing = "sync"
    out = node.answer_batch([line({"type": "send", "key": "k", "msg": f"late-{i}", "msg_id": i}) for i in range(2, 6)])
    vfs.failing = None
    storage.abandon()
    assert [r["code"] for r in replies(out)] == [13, 11, 11, 11]
    values = [value for _, value in all_messages(db)["k"]]
    assert values[0] == "acked"
    assert not {"late-3", "late-4", "late-5"} & set(values), "nothing after the failed COMMIT may be applied"


def test_the_node_process_exits_1_after_a_failed_fsync(tmp_path):
    vfs = FaultyVFS()
    storage = Storage.open(str(tmp_path / "log.db"), vfs=vfs.name)
    node = Node(storage, poll_max_per_key=100, max_line_bytes=1 << 20)
    node.answer_batch([INIT])
    vfs.failing = "sync"
    stdin_read, stdin_write = os.pipe()
    stdout_read, stdout_write = os.pipe()
    os.write(stdin_write, line({"type": "send", "key": "k", "msg": 1, "msg_id": 1}) + b"\n"
             + line({"type": "send", "key": "k", "msg": 2, "msg_id": 2}) + b"\n")
    status = node.serve(stdin_read, stdout_write)  # stdin stays open: only the failure can end it
    os.close(stdout_write)
    out = os.read(stdout_read, 1 << 16)
    for fd in (stdin_read, stdin_write, stdout_read):
        os.close(fd)
    vfs.failing = None
    storage.abandon()
    assert status == 1
    assert {r["code"] for r in replies(out)} == {13}


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB file system of its own, so the database can really run out of space."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def read_whole_log(node, key: str) -> list[list]:
    entries: list[list] = []
    while got := node.request({"type": "poll", "offsets": {key: len(entries)}})["msgs"].get(key, []):
        entries.extend(got)
    return entries


def test_a_full_disk_refuses_sends_keeps_serving_polls_and_recovers_when_space_returns(start_node, small_disk):
    db = small_disk / "log.db"
    node = start_node(db=db)
    acked: dict[int, str] = {}
    refused = []
    for i in range(200):
        value = f"{i}:" + "x" * 50_000
        reply = node.request({"type": "send", "key": "k", "msg": value})
        if reply["type"] == "send_ok":
            acked[reply["offset"]] = value
        else:
            refused.append(reply)
            if len(refused) == 3:
                break
    assert refused, "the disk never filled"
    assert all(r["type"] == "error" and r["code"] in (11, 13) for r in refused), refused
    assert node.request({"type": "poll", "offsets": {"k": 0}})["type"] == "poll_ok", "polls go on on a full disk"

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)  # space returns
    after = node.request({"type": "send", "key": "k", "msg": "after"})
    assert after["type"] == "send_ok", "the same node must accept sends once there is room again"
    assert node.alive()

    node.kill()
    stored = dict((o, v) for o, v in read_whole_log(start_node(db=db), "k"))
    for offset, value in acked.items():
        assert stored[offset] == value, f"acknowledged send at {offset} lost on a full disk"
    assert stored[after["offset"]] == "after"
    assert after["offset"] > max(acked)
