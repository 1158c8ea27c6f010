"""Reading a log back: from the file itself, with SQL of the tests' own, or from a running
node, poll after poll; and a file's digest, to show it was left untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import apsw
import msgspec


def stored_messages(db: Path | str) -> dict[tuple[str, int], Any]:
    """Every message in the file, by (key, offset), read without the node's code."""
    conn = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return {(key, offset): msgspec.json.decode(msg)
                for key, offset, msg in conn.execute("SELECT key, log_offset, msg FROM messages")}
    finally:
        conn.close()


def stored_log(db: Path | str, key: str) -> list[list[Any]]:
    """One key's messages in the file, as a poll returns them: [[offset, msg], ...]."""
    return [[offset, msg] for (k, offset), msg in sorted(stored_messages(db).items()) if k == key]


def read_whole_log(node: Any, key: str) -> list[list[Any]]:
    """One key's whole log from a running node (a `NodeChild`), polling until it is read."""
    entries: list[list[Any]] = []
    while got := node.request({"type": "poll", "offsets": {key: len(entries)}})["msgs"].get(key, []):
        entries.extend(got)
    return entries


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
