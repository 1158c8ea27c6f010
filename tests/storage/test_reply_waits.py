"""What a reply waits for: an acknowledgement for the sync of its own commit; a poll for nothing
(it reads only what is durable); a listing for the commit that moved what it lists. The real
serve loop in this process, on a log whose WAL writes and syncs a test can hold."""

from __future__ import annotations

import queue
import threading
import uuid
from typing import Any

import apsw
import msgspec

from support.in_process import log_file, serve_with
from support.messages import INIT, line

#: Long enough for a reply that is not held to arrive, on a busy machine too.
SETTLE_S = 0.5


class GatedFile(apsw.VFSFile):
    """A real file whose WAL writes and syncs wait while their gate is closed."""

    def __init__(self, vfs: GatedVFS, name: Any, flags: list[int]) -> None:
        self.vfs = vfs
        self.is_wal = str(name).endswith("-wal")
        super().__init__("", name, flags)

    def xWrite(self, data: bytes, offset: int) -> None:
        if self.is_wal:
            self.vfs.pass_gate(self.vfs.writes_open, "write")
        super().xWrite(data, offset)

    def xSync(self, flags: int) -> None:
        if self.is_wal:
            self.vfs.pass_gate(self.vfs.syncs_open, "sync")
        super().xSync(flags)


class GatedVFS(apsw.VFS):
    def __init__(self) -> None:
        self.name = f"gated-{uuid.uuid4().hex}"
        self.writes_open = threading.Event()
        self.syncs_open = threading.Event()
        self.writes_open.set()
        self.syncs_open.set()
        self.waiting: queue.Queue[str] = queue.Queue()  # "write" or "sync", when one starts waiting
        super().__init__(self.name, "")

    def xOpen(self, name: Any, flags: list[int]) -> GatedFile:
        return GatedFile(self, name, flags)

    def pass_gate(self, gate: threading.Event, what: str) -> None:
        if not gate.is_set():
            self.waiting.put(what)
            assert gate.wait(30), f"the test never opened the {what} gate"


def test_a_poll_waits_for_no_sync_and_a_listing_only_for_the_commit_it_lists(tmp_path):
    """A send and a commit are committed and their sync held; meanwhile polls are answered at
    once, with what is durable and without the pending message, and so is a listing of
    another key; the listing of the committed key, and both acknowledgements, wait for the
    sync. Then the pending message is there for the next poll."""
    vfs = GatedVFS()
    log = log_file(tmp_path / "log.db", vfs.name)
    seen: dict[str, Any] = {}

    def client(to_node: Any, from_node: Any) -> None:
        try:
            talk(to_node, from_node)
        finally:  # a failed expectation must not leave the node held at a gate
            vfs.writes_open.set()
            vfs.syncs_open.set()

    def talk(to_node: Any, from_node: Any) -> None:
        replies: queue.Queue[dict[str, Any]] = queue.Queue()
        reader = threading.Thread(target=lambda: [replies.put(msgspec.json.decode(raw)["body"]) for raw in from_node],
                                  daemon=True)
        reader.start()
        to_node.write(INIT + line({"type": "send", "key": "b", "msg": "durable", "msg_id": 1}))
        assert [replies.get(timeout=10)["type"] for _ in range(2)] == ["init_ok", "send_ok"]

        vfs.writes_open.clear()
        vfs.syncs_open.clear()
        to_node.write(line({"type": "send", "key": "a", "msg": "pending", "msg_id": 2})
                      + line({"type": "commit_offsets", "offsets": {"b": 0}, "msg_id": 3}))
        assert vfs.waiting.get(timeout=10) == "write"  # their COMMIT is writing the WAL
        to_node.write(line({"type": "poll", "offsets": {"b": 0, "a": 0}, "msg_id": 4})
                      + line({"type": "list_committed_offsets", "keys": ["b"], "msg_id": 5})
                      + line({"type": "list_committed_offsets", "keys": ["c"], "msg_id": 6}))
        vfs.writes_open.set()  # COMMIT ends with the reads waiting: the sync goes to the syncer's thread
        assert vfs.waiting.get(timeout=10) == "sync"
        seen["held"] = [replies.get(timeout=10) for _ in range(2)]
        try:
            seen["early"] = replies.get(timeout=SETTLE_S)
        except queue.Empty:
            seen["early"] = None
        vfs.syncs_open.set()
        seen["after"] = [replies.get(timeout=10) for _ in range(3)]
        to_node.write(line({"type": "poll", "offsets": {"a": 0}, "msg_id": 7}))
        seen["last"] = replies.get(timeout=10)

    assert serve_with(log, client) == 0
    log.close()
    assert sorted(seen["held"], key=lambda reply: reply["in_reply_to"]) == [
        {"type": "poll_ok", "msgs": {"b": [[0, "durable"]]}, "in_reply_to": 4},
        {"type": "list_committed_offsets_ok", "offsets": {}, "in_reply_to": 6},
    ], "a read waited for a sync, or saw what was not durable"
    assert seen["early"] is None, f"a reply left before the sync it depends on: {seen['early']}"
    assert sorted((reply["in_reply_to"], reply["type"]) for reply in seen["after"]) == [
        (2, "send_ok"), (3, "commit_offsets_ok"), (5, "list_committed_offsets_ok")]
    assert next(reply for reply in seen["after"] if reply["in_reply_to"] == 5)["offsets"] == {"b": 0}
    assert seen["last"] == {"type": "poll_ok", "msgs": {"a": [[0, "pending"]]}, "in_reply_to": 7}
