"""Failed fsyncs and writes injected into the real installed `maelstrom-kafka` by libfiu:
started under `fiu-run -x`, the running process is told by `fiu-ctrl` to fail every call
from then on, exactly as a dying disk would."""

from __future__ import annotations

import re
import shutil
import subprocess

import msgspec
import pytest

from support.logs import digest
from support.messages import line

#: libfiu's names for the calls that fail: SQLite syncs with fdatasync/fsync and writes its
#: files with pwrite (the node's stdout uses write, which keeps working).
FAILURES = {"sync": "posix/io/sync/*", "write": "posix/io/rw/pwrite"}


def fiu(command: str) -> str:
    found = shutil.which(command)
    if found is None:
        pytest.fail(f"{command} is not installed (Debian package fiu-utils; .ci/run installs it)")
    return found


#: Every call fails from then on (a dead disk), or only the next one (a passing fault, after
#: which a checkpoint at exit would succeed and copy a WAL that must not be trusted). Each
#: failure sets errno EIO: left to choose, libfiu may pick EINTR, which SQLite retries.
HOW_LONG = {"every call": ",failinfo=5", "one call": ",failinfo=5,onetime"}


@pytest.mark.parametrize("how_long", sorted(HOW_LONG))
@pytest.mark.parametrize("failing", sorted(FAILURES))
def test_after_a_failed_commit_nothing_more_is_acknowledged_the_node_exits_1_and_a_restart_keeps_every_ack(
        start_node, tmp_path, failing, how_long):
    db = tmp_path / "log.db"
    control = tmp_path / "fiu-ctrl"
    node = start_node(db=db, wrapper=[fiu("fiu-run"), "-x", "-f", str(control)])
    acked: dict[int, str] = {}
    for i in range(20):
        reply = node.request({"type": "send", "key": "k", "msg": f"acked-{i}"})
        acked[reply["offset"]] = f"acked-{i}"
    node.request({"type": "commit_offsets", "offsets": {"k": 5}})
    file_before = digest(db)

    enabled = subprocess.run([fiu("fiu-ctrl"), "-f", str(control), "-c", f"enable name={FAILURES[failing]}{HOW_LONG[how_long]}",
                              str(node.proc.pid)], capture_output=True, text=True, timeout=30)
    assert enabled.returncode == 0 and not enabled.stdout + enabled.stderr, enabled
    batch = [
        {"type": "send", "key": "k", "msg": "lost-1", "msg_id": 101},
        {"type": "poll", "offsets": {"k": 0}, "msg_id": 102},
        {"type": "send", "key": "other", "msg": "lost-2", "msg_id": 103},
        {"type": "commit_offsets", "offsets": {"k": 10}, "msg_id": 104},
        {"type": "list_committed_offsets", "keys": ["k"], "msg_id": 105},
        {"type": "send", "key": "k", "msg": "lost-3", "msg_id": 106},
    ]
    node.write(b"".join(map(line, batch)))  # one write of under 4 KiB: one read, one batch
    assert node.proc.wait(30) == 1, node.stderr()
    replies = []
    while (raw := node.lines.get(timeout=10)) is not None:
        replies.append(msgspec.json.decode(raw)["body"])
    assert len(replies) == len(batch), replies
    assert sum(r["type"] == "send_ok" for r in replies) == 0, "a send acknowledged after the failed COMMIT"
    assert sum(r["type"] == "error" and r["code"] == 13 for r in replies) == len(batch), replies
    assert sorted(r["in_reply_to"] for r in replies) == [r["msg_id"] for r in batch]
    assert digest(db) == file_before, "the database file was checkpointed after the failure"
    assert (tmp_path / "log.db-wal").exists(), "the WAL must be left for the restart to recover from"
    stderr = node.stderr()
    said = "a sync of the WAL failed" if failing == "sync" else "COMMIT failed"
    assert said in stderr and "Traceback" not in stderr
    sqlite_codes = set(re.findall(r"SQLite \((\w+)\)", stderr))
    assert all(code.startswith("SQLITE_IOERR") for code in sqlite_codes), f"SQLite reported more: {sqlite_codes}"
    assert "SELECT" not in stderr and "INSERT" not in stderr, "SQL text in the log"

    restarted = start_node(db=db)
    log = restarted.request({"type": "poll", "offsets": {"k": 0}})["msgs"]["k"]
    stored = dict((offset, value) for offset, value in log)
    for offset, value in acked.items():
        assert stored[offset] == value, f"acknowledged send at {offset} lost"
    assert [offset for offset, _ in log] == list(range(len(log))), "offsets stay dense"
    assert restarted.request({"type": "list_committed_offsets", "keys": ["k"]})["offsets"]["k"] >= 5
    assert restarted.request({"type": "send", "key": "k", "msg": "after"})["offset"] == len(log)
