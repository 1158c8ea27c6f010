"""Failed writes and fsyncs, injected by a VFS that wraps SQLite's real one, statements that
fail inside a batch, and a full disk."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable

import apsw
import msgspec
import pytest

from kafka_node.storage import LogFile, wal

from support.in_process import log_file, serve_batches
from support.logs import digest, read_whole_log
from support.messages import INIT, line


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

    def fails_from_now(self, what: str | None) -> Callable[[], None]:
        """A step between two batches from which on `what` fails (None: nothing)."""
        return lambda: setattr(self, "failing", what)


def all_messages(path) -> dict[str, list]:
    """Every key's log, as a restart on the file finds it."""
    with LogFile(str(path)) as restarted:
        log = restarted.open().log
        keys = [k for (k,) in log.conn.execute("SELECT key FROM log_keys")]
        return msgspec.json.decode(log.read_from({k: 0 for k in keys}, 1_000_000, 1 << 30))


def sends(values, first_id: int, key: str = "k") -> bytes:
    return b"".join(line({"type": "send", "key": key, "msg": value, "msg_id": first_id + i}) for i, value in enumerate(values))


@pytest.mark.parametrize("failing", ["sync", "write"])
def test_no_request_of_a_batch_whose_commit_fails_is_acknowledged_and_the_node_stops(tmp_path, failing):
    vfs = FaultyVFS()
    db = tmp_path / "log.db"
    log = log_file(db, vfs.name)
    failing_batch = sends([4, 5, 6, 7], 4) + line({"type": "commit_offsets", "offsets": {"k": 2}, "msg_id": 8})
    status, (acked, failed, never) = serve_batches(
        log, [INIT + sends([1, 2, 3], 1), vfs.fails_from_now(failing), failing_batch, sends(["never"], 9)],
        close_input=False)
    vfs.failing = None
    log.close()
    assert [r["offset"] for r in acked[1:]] == [0, 1, 2]
    assert status == 1, "after an I/O error at COMMIT the node must stop serving, with exit status 1"
    assert [r["type"] for r in failed] == ["error"] * 5
    assert {r["code"] for r in failed} == {13}, "the write may have reached the disk: only 13 is honest"
    assert never == [], "a batch after the failure was served"

    recovered = all_messages(db)["k"]
    assert recovered[:3] == [[0, 1], [1, 2], [2, 3]], "what was acknowledged before must survive"
    assert [o for o, _ in recovered] == list(range(len(recovered))), "offsets stay dense after recovery"
    assert "never" not in {value for _, value in recovered}


def test_after_a_failed_commit_the_rest_of_the_read_is_not_applied(tmp_path):
    """With --max-batch 1 one read holds several transactions: after the first fails at
    COMMIT (its WAL write fails), the others must not be tried on a connection whose cache
    cannot be trusted."""
    vfs = FaultyVFS()
    log = log_file(tmp_path / "log.db", vfs.name)
    status, (_, out) = serve_batches(
        log, [INIT + sends(["acked"], 1), vfs.fails_from_now("write"), sends([f"late-{i}" for i in range(2, 6)], 2)],
        max_batch=1)
    vfs.failing = None
    log.close()
    assert status == 1
    assert [r["code"] for r in out] == [13, 11, 11, 11]
    values = [value for _, value in all_messages(tmp_path / "log.db")["k"]]
    assert values[0] == "acked"
    assert not {"late-3", "late-4", "late-5"} & set(values), "nothing after the failed COMMIT may be applied"


def test_after_a_failed_sync_no_transaction_it_was_to_cover_is_acknowledged(tmp_path):
    """The WAL is synced after the batch's COMMITs: when that sync fails, whether any of them
    reached the disk is unknown, so each of their requests gets 13, the node stops (exit 1)
    and nothing more is applied."""
    vfs = FaultyVFS()
    log = log_file(tmp_path / "log.db", vfs.name)
    status, (_, out, later) = serve_batches(
        log, [INIT + sends(["acked"], 1), vfs.fails_from_now("sync"), sends([f"late-{i}" for i in range(2, 6)], 2),
              sends(["later"], 6)], max_batch=1, close_input=False)
    vfs.failing = None
    log.close()
    assert status == 1
    assert [r["code"] for r in out] == [13, 13, 13, 13]
    assert later == [], "a batch after the failed sync was served"
    assert "later" not in {value for _, value in all_messages(tmp_path / "log.db")["k"]}


def test_a_failing_statement_costs_only_its_own_request_and_the_batch_commits_once(tmp_path, caplog):
    vfs = FaultyVFS()
    log = log_file(tmp_path / "log.db", vfs.name)
    status, (_, out) = serve_batches(log, [INIT + sends(["x" * 5000], 1, key="big"), limit_lengths_to_4000(log),
                                           sends(["A"], 2) + POLL_OF_BIG + sends(["B"], 4)])
    log.close()
    by_id = {reply["in_reply_to"]: reply for reply in out}
    assert status == 0 and len(out) == 3
    assert by_id[2] == {"type": "send_ok", "offset": 0, "in_reply_to": 2}
    assert by_id[4] == {"type": "send_ok", "offset": 1, "in_reply_to": 4}
    assert by_id[3]["code"] == 11
    assert by_id[3]["text"].startswith("storage error, nothing applied: the reply would be too big")
    assert all_messages(tmp_path / "log.db")["k"] == [[0, "A"], [1, "B"]]
    sqlite_says = [r.getMessage() for r in caplog.records if r.getMessage().startswith("SQLite (SQLITE_TOOBIG)")]
    assert sqlite_says, "SQLite's own record of the failure is kept"
    assert "SELECT" not in caplog.text and "json_each" not in caplog.text, "the log holds the statement's SQL"


def test_after_a_failed_sync_nothing_of_the_wal_is_copied_into_the_file(tmp_path, monkeypatch):
    """The batch whose sync fails also takes the WAL past its limit: the writer must not then
    have the untrusted WAL checkpointed into the database file on its way out."""
    monkeypatch.setattr(wal, "CHECKPOINT_PAGES", 1 << 30)  # no checkpoint but the one at the limit
    monkeypatch.setattr(wal, "WAL_LIMIT_PAGES", 40)
    vfs = FaultyVFS()
    db = tmp_path / "log.db"
    log = log_file(db, vfs.name)
    file_before: list[str] = []
    big_batch = b"".join(sends(["x" * 900], 10 + i, key=str(i)) for i in range(60))
    status, _ = serve_batches(log, [INIT + sends(["small"], 1), lambda: file_before.append(digest(db)),
                                    vfs.fails_from_now("one sync"), big_batch], close_input=False)
    assert status == 1
    assert digest(db) == file_before[0], "the WAL was checkpointed into the file after the failed sync"
    log.close()


@pytest.mark.parametrize("alone", [True, False], ids=["the batch's one write", "beside another write"])
def test_a_failing_write_is_undone_whole_and_leaves_the_offsets_dense(tmp_path, alone):
    """A send SQLite refuses (a message past the length limit) gets 11 and moves no counter,
    whether it is the transaction's one write (rolled back with the transaction) or shares it
    (rolled back to its savepoint, the other send committed)."""
    vfs = FaultyVFS()
    log = log_file(tmp_path / "log.db", vfs.name)
    too_long, fits = sends(["x" * 5000], 2), sends(["fits"], 3)
    batches = [too_long, fits] if alone else [too_long + fits]
    status, (_, *answered) = serve_batches(log, [INIT + sends(["first"], 1), limit_lengths_to_4000(log), *batches])
    log.close()
    by_id = {reply["in_reply_to"]: reply for replies in answered for reply in replies}
    assert status == 0
    assert by_id[2]["code"] == 11 and by_id[2]["text"].startswith("storage error, nothing applied")
    assert by_id[3] == {"type": "send_ok", "offset": 1, "in_reply_to": 3}, "the refused send moved the counter"
    assert all_messages(tmp_path / "log.db")["k"] == [[0, "first"], [1, "fits"]]


#: A poll of the key whose one message is longer than the length limit `limit_lengths_to_4000` sets.
POLL_OF_BIG = line({"type": "poll", "offsets": {"big": 0}, "msg_id": 3})


def limit_lengths_to_4000(log: LogFile) -> Callable[[], None]:
    """Lower SQLite's length limit, so that polling a 5,000-byte message fails inside SQLite
    ("string or blob too big") while every other statement works."""
    return lambda: log.storage.conn.limit(apsw.SQLITE_LIMIT_LENGTH, 4000)


def test_nothing_is_acknowledged_after_a_failed_commit_even_when_a_statement_of_the_batch_failed(tmp_path):
    """A batch of [send A, a poll whose statement fails, send B] whose sync fails: every write
    gets 13 and B is not acknowledged (it once was, when the batch was rolled back and
    replayed one transaction per request, and only A's COMMIT met the failure)."""
    vfs = FaultyVFS()
    log = log_file(tmp_path / "log.db", vfs.name)
    status, (_, answers) = serve_batches(
        log, [INIT + sends(["x" * 5000], 1, key="big"), limit_lengths_to_4000(log), vfs.fails_from_now("one sync"),
              sends(["A"], 2) + POLL_OF_BIG + sends(["B"], 4)])
    vfs.failing = None
    log.close()
    assert status == 1 and len(answers) == 3
    assert sum(a["type"] == "send_ok" for a in answers) == 0, answers
    assert {a["in_reply_to"]: a.get("code") for a in answers} == {2: 13, 3: 11, 4: 13}, answers


def test_a_whole_database_failure_inside_a_batch_answers_every_request_11_and_applies_none(tmp_path, caplog):
    """A full disk met by a statement (the cache spills pages before COMMIT): SQLite rolls
    the whole transaction back itself, so no request of the batch was applied."""
    vfs = FaultyVFS()
    log = log_file(tmp_path / "log.db", vfs.name)
    batch = (sends(["small"], 1) + line({"type": "commit_offsets", "offsets": {"k": 0}, "msg_id": 2})
             + b"".join(sends(["x" * 3000], 10 + i, key=str(i)) for i in range(100)) + sends(["after"], 3))

    def small_cache_on_a_full_disk() -> None:
        log.storage.conn.pragma("cache_size", 10)
        vfs.failing = "full"

    status, (_, answers, later) = serve_batches(log, [INIT, small_cache_on_a_full_disk, batch, vfs.fails_from_now(None),
                                                      sends(["later"], 4)])
    log.close()
    assert status == 0 and len(answers) == 103
    assert {a.get("code") for a in answers} == {11}, answers[:3]
    assert all("the disk is full" in a["text"] for a in answers), "the error says what failed"
    assert later == [{"type": "send_ok", "offset": 0, "in_reply_to": 4}], "nothing of the failed batch may have been applied"
    sqlite_codes = {record.args[0] for record in caplog.records if record.msg.startswith("SQLite (")}
    assert sqlite_codes <= {"SQLITE_FULL"}, f"SQLite reported more than the full disk: {sqlite_codes}"


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
