"""Failed writes and fsyncs, injected by a VFS that wraps SQLite's real one, statements that
fail inside a batch, and a full disk."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import apsw
import msgspec
import pytest

from kafka_node.node import Node
from kafka_node.storage import Storage

from support.logs import read_whole_log
from support.messages import INIT, line, reply_bodies


class FaultyFile(apsw.VFSFile):
    """A real file whose writes or syncs fail while the VFS says so."""

    def __init__(self, vfs: FaultyVFS, name, flags) -> None:
        self.vfs = vfs
        super().__init__("", name, flags)

    def xWrite(self, data, offset) -> None:
        if self.vfs.failing == "write":
            raise apsw.IOError("injected write failure")
        if self.vfs.failing == "full":
            raise apsw.FullError("injected full disk")
        super().xWrite(data, offset)

    def xSync(self, flags) -> None:
        if self.vfs.failing == "one sync":
            self.vfs.failing = None
            raise apsw.IOError("injected fsync failure")
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


replies = reply_bodies


def all_messages(path) -> dict[str, list]:
    storage = Storage.open(str(path))
    try:
        keys = [k for (k,) in storage.conn.execute("SELECT key FROM log_keys")]
        return msgspec.json.decode(storage.read_from({k: 0 for k in keys}, 1_000_000, 1 << 30))
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


def one_transaction_per_request_after_one_ack(tmp_path: Path) -> tuple[FaultyVFS, Path, Storage, Node]:
    """A node with --max-batch 1 on a file behind FaultyVFS, having acknowledged "acked" on key k."""
    vfs = FaultyVFS()
    db = tmp_path / "log.db"
    storage = Storage.open(str(db), vfs=vfs.name)
    node = Node(storage, poll_max_per_key=100, max_line_bytes=1 << 20, max_batch=1)
    node.answer_batch([INIT, line({"type": "send", "key": "k", "msg": "acked", "msg_id": 1})])
    return vfs, db, storage, node


def test_after_a_failed_commit_the_rest_of_the_read_is_not_applied(tmp_path):
    """With --max-batch 1 one read holds several transactions: after the first fails at
    COMMIT (its WAL write fails), the others must not be tried on a connection whose cache
    cannot be trusted."""
    vfs, db, storage, node = one_transaction_per_request_after_one_ack(tmp_path)
    vfs.failing = "write"
    out = node.answer_batch([line({"type": "send", "key": "k", "msg": f"late-{i}", "msg_id": i}) for i in range(2, 6)])
    vfs.failing = None
    storage.abandon()
    assert [r["code"] for r in replies(out)] == [13, 11, 11, 11]
    values = [value for _, value in all_messages(db)["k"]]
    assert values[0] == "acked"
    assert not {"late-3", "late-4", "late-5"} & set(values), "nothing after the failed COMMIT may be applied"


def test_after_a_failed_sync_no_transaction_it_was_to_cover_is_acknowledged(tmp_path):
    """The WAL is synced after the batch's COMMITs: when that sync fails, whether any of them
    reached the disk is unknown, so each of their requests gets 13, and nothing more is applied."""
    vfs, db, storage, node = one_transaction_per_request_after_one_ack(tmp_path)
    vfs.failing = "sync"
    out = node.answer_batch([line({"type": "send", "key": "k", "msg": f"late-{i}", "msg_id": i}) for i in range(2, 6)])
    later = node.answer_batch([line({"type": "send", "key": "k", "msg": "later", "msg_id": 6})])
    vfs.failing = None
    storage.abandon()
    assert [r["code"] for r in replies(out)] == [13, 13, 13, 13]
    assert node.storage_untrusted and [r["code"] for r in replies(later)] == [11]
    assert "later" not in {value for _, value in all_messages(db)["k"]}


def node_with_a_poll_that_fails(tmp_path, vfs: FaultyVFS) -> tuple[Node, Storage, bytes]:
    """A node whose log holds one message longer than SQLite's length limit, so a poll of
    its key fails inside SQLite ("string or blob too big") while other statements work."""
    storage = Storage.open(str(tmp_path / "log.db"), vfs=vfs.name)
    node = Node(storage, poll_max_per_key=100, max_line_bytes=1 << 20)
    node.answer_batch([INIT, line({"type": "send", "key": "big", "msg": "x" * 5000, "msg_id": 1})])
    storage.conn.limit(apsw.SQLITE_LIMIT_LENGTH, 4000)
    return node, storage, line({"type": "poll", "offsets": {"big": 0}, "msg_id": 3})


def test_a_failing_statement_costs_only_its_own_request_and_the_batch_commits_once(tmp_path, caplog):
    node, storage, failing_poll = node_with_a_poll_that_fails(tmp_path, FaultyVFS())
    out = node.answer_batch([line({"type": "send", "key": "k", "msg": "A", "msg_id": 2}), failing_poll,
                             line({"type": "send", "key": "k", "msg": "B", "msg_id": 4})])
    first, refused, last = replies(out)
    assert first == {"type": "send_ok", "offset": 0, "in_reply_to": 2}
    assert last == {"type": "send_ok", "offset": 1, "in_reply_to": 4}
    assert (refused["code"], refused["in_reply_to"]) == (11, 3)
    assert refused["text"].startswith("storage error, nothing applied: the reply would be too big")
    storage.close()
    assert all_messages(tmp_path / "log.db")["k"] == [[0, "A"], [1, "B"]]
    sqlite_says = [r.getMessage() for r in caplog.records if r.getMessage().startswith("SQLite (SQLITE_TOOBIG)")]
    assert sqlite_says, "SQLite's own record of the failure is kept"
    assert "SELECT" not in caplog.text and "json_each" not in caplog.text, "the log holds the statement's SQL"


def test_nothing_is_acknowledged_after_a_failed_commit_even_when_a_statement_of_the_batch_failed(tmp_path):
    """A batch of [send A, a poll whose statement fails, send B] whose COMMIT fails once:
    every request that touched storage gets 13, and B is not acknowledged (it once was, when
    the batch was rolled back and replayed one transaction per request, and only A's COMMIT
    met the failure)."""
    vfs = FaultyVFS()
    node, storage, failing_poll = node_with_a_poll_that_fails(tmp_path, vfs)
    vfs.failing = "one sync"
    out = node.answer_batch([line({"type": "send", "key": "k", "msg": "A", "msg_id": 2}), failing_poll,
                             line({"type": "send", "key": "k", "msg": "B", "msg_id": 4})])
    vfs.failing = None
    storage.abandon()
    answers = replies(out)
    assert len(answers) == 3
    assert sum(a["type"] == "send_ok" for a in answers) == 0, answers
    assert [a.get("code") for a in answers] == [13, 13, 13], answers
    assert node.storage_untrusted


def test_a_whole_database_failure_inside_a_batch_answers_every_request_11_and_applies_none(tmp_path, caplog):
    """A full disk met by a statement (the cache spills pages before COMMIT): SQLite rolls
    the whole transaction back itself, so no request of the batch was applied."""
    vfs = FaultyVFS()
    storage = Storage.open(str(tmp_path / "log.db"), vfs=vfs.name)
    node = Node(storage, poll_max_per_key=100, max_line_bytes=1 << 20)
    node.answer_batch([INIT])
    storage.conn.pragma("cache_size", 10)
    vfs.failing = "full"
    batch = [line({"type": "send", "key": "k", "msg": "small", "msg_id": 1}),
             line({"type": "commit_offsets", "offsets": {"k": 0}, "msg_id": 2})]
    batch += [line({"type": "send", "key": str(i), "msg": "x" * 3000, "msg_id": 10 + i}) for i in range(100)]
    batch.append(line({"type": "send", "key": "k", "msg": "after", "msg_id": 3}))
    out = node.answer_batch(batch)
    vfs.failing = None
    answers = replies(out)
    assert len(answers) == len(batch)
    assert {a.get("code") for a in answers} == {11}, answers[:3]
    assert all("the disk is full" in a["text"] for a in answers), "the error says what failed"
    assert not node.storage_untrusted
    assert replies(node.answer_batch([line({"type": "send", "key": "k", "msg": "later", "msg_id": 4})])) == [
        {"type": "send_ok", "offset": 0, "in_reply_to": 4}], "nothing of the failed batch may have been applied"
    storage.close()
    sqlite_codes = {record.args[0] for record in caplog.records if record.msg.startswith("SQLite (")}
    assert sqlite_codes <= {"SQLITE_FULL"}, f"SQLite reported more than the full disk: {sqlite_codes}"


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
