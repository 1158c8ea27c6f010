"""A power cut at any moment keeps every acknowledgement of `--durability full`.

The node runs its real serve loop (replies held until the WAL syncer reports their COMMIT on
disk) on a log opened through a VFS that wraps SQLite's own and records every write, truncate
and sync that reaches the database and WAL files, in order. For many cut points the files are
then rebuilt as a power cut would leave them: whatever a completed sync covered is kept; each
write not yet covered is kept, torn or dropped at random. Every rebuilt log must open, pass
`PRAGMA integrity_check`, and hold every send and commit acknowledged before the cut.
Checkpoints are made frequent, so cuts also land while the WAL is copied back and restarted.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apsw
import msgspec
import pytest

from kafka_node.storage import wal

from support.in_process import log_file, serve_with
from support.messages import line

SECTOR = 512
#: Extra time each sync takes, so that the client could see an ack sent before its sync ended.
SLOW_SYNC_S = 0.002


@dataclass
class Event:
    kind: str  # "write", "truncate", "sync" or "delete"
    path: str
    offset: int = 0  # write: where; truncate: the new size
    data: bytes = b""
    covers: int = 0  # sync: writes with a sequence number below this one are on disk


@dataclass
class Recording:
    """Everything that reached the files, numbered in the order it happened."""

    events: list[Event] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, event: Event) -> None:
        with self.lock:
            self.events.append(event)

    def now(self) -> int:
        with self.lock:
            return len(self.events)


class RecordingFile(apsw.VFSFile):
    def __init__(self, recording: Recording, name: Any, flags: list[int]) -> None:
        self.recording = recording
        self.path = name.filename() if isinstance(name, apsw.URIFilename) else str(name)
        self.recorded = not self.path.endswith("-shm")  # the shared memory is rebuilt on open
        super().__init__("", name, flags)

    def xWrite(self, data: bytes, offset: int) -> None:
        super().xWrite(data, offset)
        if self.recorded:
            self.recording.add(Event("write", self.path, offset, bytes(data)))

    def xTruncate(self, size: int) -> None:
        super().xTruncate(size)
        if self.recorded:
            self.recording.add(Event("truncate", self.path, size))

    def xSync(self, flags: int) -> None:
        started = self.recording.now()
        super().xSync(flags)
        if self.recorded:
            time.sleep(SLOW_SYNC_S)  # a slow disk: an ack sent before its sync ends would be seen first
            self.recording.add(Event("sync", self.path, covers=started))


class RecordingVFS(apsw.VFS):
    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.name = f"recording-{uuid.uuid4().hex}"
        super().__init__(self.name, "")

    def xOpen(self, name: Any, flags: list[int]) -> RecordingFile:
        return RecordingFile(self.recording, name, flags)

    def xDelete(self, filename: str, syncdir: bool) -> None:
        super().xDelete(filename, syncdir)
        if not filename.endswith("-shm"):
            self.recording.add(Event("delete", filename))


@dataclass
class Ack:
    at: int  # the recording's length when the client read the reply: the ack left the node before
    kind: str
    key: str
    offset: int
    msg: Any = None


def run_workload(db: Path, recording: Recording, vfs: RecordingVFS, rounds: int, seed: int) -> list[Ack]:
    """Serve bursts of sends and commits on the real serve loop; every ack as the client saw it."""
    log = log_file(db, vfs.name)
    acks: list[Ack] = []
    asked: dict[int, tuple[str, str, Any]] = {}
    in_flight = threading.Semaphore(48)  # bursts overlap: some commit while others' syncs run

    def write_requests(out: Any) -> None:
        rng = random.Random(seed)
        out.write(line({"type": "init", "node_id": "n0", "node_ids": ["n0"], "msg_id": 0}))
        msg_id = 0
        for burst in range(rounds):
            requests = []
            for _ in range(rng.randint(1, 24)):
                in_flight.acquire()
                msg_id += 1
                key = str(rng.randrange(6))
                if rng.random() < 0.8:
                    asked[msg_id] = ("send", key, f"{burst}-{msg_id}")
                    requests.append(line({"type": "send", "key": key, "msg": f"{burst}-{msg_id}", "msg_id": msg_id}))
                else:
                    asked[msg_id] = ("commit", key, rng.randrange(20))
                    requests.append(line({"type": "commit_offsets", "offsets": {key: asked[msg_id][2]},
                                          "msg_id": msg_id}))
            out.write(b"".join(requests))
            time.sleep(rng.choice([0, 0, 0.0005, 0.002]))

    def client(to_node: Any, from_node: Any) -> None:
        writer = threading.Thread(target=write_requests, args=(to_node,))
        writer.start()
        from_node.readline()  # init_ok
        while writer.is_alive() or len(acks) < len(asked):
            body = msgspec.json.decode(from_node.readline())["body"]
            at = recording.now()
            kind, key, value = asked[body["in_reply_to"]]
            assert body["type"] in ("send_ok", "commit_offsets_ok"), body
            acks.append(Ack(at, kind, key, body.get("offset", value), value))
            in_flight.release()
        writer.join()

    try:
        assert serve_with(log, client) == 0
    finally:
        log.close()
    return acks


def rebuild(recording: Recording, cut: int, rng: random.Random, directory: Path, names: dict[str, str]) -> None:
    """The files as a power cut at event `cut` could leave them."""
    events = recording.events[:cut]
    covered: dict[str, int] = {}
    for event in events:
        if event.kind == "sync":
            covered[event.path] = max(covered.get(event.path, 0), event.covers)
    contents: dict[str, bytearray] = {}
    for number, event in enumerate(events):
        if event.kind == "sync":
            continue
        if event.kind == "delete":  # the rollback journal of the file's creation: taken as done
            contents.pop(event.path, None)
            continue
        content = contents.setdefault(event.path, bytearray())
        durable = number < covered.get(event.path, 0)
        if event.kind == "truncate":
            if durable or rng.random() < 0.5:
                del content[event.offset:]
            continue
        data = event.data
        if not durable:
            fate = rng.random()
            if fate < 0.4:
                continue  # never reached the disk
            if fate < 0.7:
                data = data[:SECTOR * rng.randint(0, len(data) // SECTOR)]  # torn
        end = event.offset + len(data)
        if len(content) < end:
            content.extend(bytes(end - len(content)))
        content[event.offset:end] = data
    for path, content in contents.items():
        (directory / names[path]).write_bytes(bytes(content))


def check_holds_acks(db: Path, acks: list[Ack], cut: int) -> None:
    conn = apsw.Connection(str(db))
    try:
        assert conn.execute("PRAGMA integrity_check").get == "ok"
        for ack in acks:
            if ack.at >= cut:
                continue
            if ack.kind == "send":
                stored = conn.execute("SELECT msg FROM messages WHERE key = ? AND log_offset = ?",
                                      (ack.key, ack.offset)).get
                assert stored is not None and msgspec.json.decode(stored) == ack.msg, (ack, cut)
            else:
                committed = conn.execute("SELECT committed_offset FROM log_keys WHERE key = ?", (ack.key,)).get
                assert committed is not None and committed >= ack.offset, (ack, cut)
    finally:
        conn.close()


@pytest.mark.parametrize("seed", [1, 2])
def test_every_acknowledgement_survives_a_power_cut_at_any_moment(tmp_path, monkeypatch, seed):
    # Checkpoints every few batches: cuts then also land while the WAL is copied back into the
    # database file and while a new WAL overwrites the old one from its start.
    monkeypatch.setattr(wal, "CHECKPOINT_PAGES", 24)
    monkeypatch.setattr(wal, "WAL_LIMIT_PAGES", 60)
    recording = Recording()
    vfs = RecordingVFS(recording)
    db = tmp_path / "log.db"
    acks = run_workload(db, recording, vfs, rounds=120, seed=seed)
    assert sum(1 for a in acks if a.kind == "send") > 500
    wal_syncs = sum(1 for e in recording.events if e.kind == "sync" and e.path.endswith("-wal"))
    db_syncs = sum(1 for e in recording.events if e.kind == "sync" and not e.path.endswith("-wal"))
    assert wal_syncs > 50 and db_syncs > 3, "the run synced the WAL often and checkpointed several times"
    names = {str(db) + suffix: "log.db" + suffix for suffix in ("", "-wal", "-journal")}
    rng = random.Random(seed)
    ends = len(recording.events)
    acked_at = sorted({a.at for a in acks})
    # Cuts everywhere, and especially right after an ack was read, where a lost ack would show.
    cuts = sorted({rng.randrange(1, ends) for _ in range(60)} | {at + 1 for at in rng.sample(acked_at, min(60, len(acked_at)))})
    for cut in cuts:
        for attempt in range(3):
            directory = tmp_path / f"cut-{cut}-{attempt}"
            directory.mkdir()
            rebuild(recording, cut, rng, directory, names)
            if (directory / "log.db").exists():
                check_holds_acks(directory / "log.db", acks, cut)
            else:
                assert not any(a.at < cut for a in acks), "acks before the database file existed"
