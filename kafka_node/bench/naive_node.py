"""A kafka node as a first-timer would write it, the baseline our node must beat: Python's standard
sqlite3 and json, WAL with synchronous=FULL, one line, one transaction and one fsync at a time.

Run it as `python -m kafka_node.bench.naive_node --db PATH`.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys

SCHEMA = """
CREATE TABLE IF NOT EXISTS msgs (key TEXT, off INTEGER, msg TEXT, PRIMARY KEY (key, off));
CREATE TABLE IF NOT EXISTS committed (key TEXT PRIMARY KEY, off INTEGER);
"""


def answer(db: sqlite3.Connection, body: dict) -> dict:
    kind = body["type"]
    if kind == "init":
        return {"type": "init_ok"}
    if kind == "send":
        with db:  # one transaction, committed (and synced) before the reply
            (offset,) = db.execute("SELECT coalesce(max(off) + 1, 0) FROM msgs WHERE key = ?", (body["key"],)).fetchone()
            db.execute("INSERT INTO msgs VALUES (?, ?, ?)", (body["key"], offset, json.dumps(body["msg"])))
        return {"type": "send_ok", "offset": offset}
    if kind == "poll":
        msgs = {}
        for key, start in body["offsets"].items():
            rows = db.execute("SELECT off, msg FROM msgs WHERE key = ? AND off >= ? ORDER BY off LIMIT 100", (key, start))
            if found := [[offset, json.loads(msg)] for offset, msg in rows]:
                msgs[key] = found
        return {"type": "poll_ok", "msgs": msgs}
    if kind == "commit_offsets":
        with db:
            for key, offset in body["offsets"].items():
                db.execute("INSERT INTO committed VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET off = max(off, excluded.off)",
                           (key, offset))
        return {"type": "commit_offsets_ok"}
    if kind == "list_committed_offsets":
        keys = body["keys"]
        rows = db.execute(f"SELECT key, off FROM committed WHERE key IN ({','.join('?' * len(keys))})", keys)
        return {"type": "list_committed_offsets_ok", "offsets": dict(rows)}
    return {"type": "error", "code": 10, "text": f"unsupported request type {kind!r}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kafka_node.bench.naive_node", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="the SQLite file")
    args = parser.parse_args(argv)
    db = sqlite3.connect(args.db)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.executescript(SCHEMA)
    node_id = "n0"
    for line in sys.stdin:
        request = json.loads(line)
        body = request["body"]
        if body["type"] == "init":
            node_id = body["node_id"]
        reply = {**answer(db, body), "in_reply_to": body["msg_id"]}
        sys.stdout.write(json.dumps({"src": node_id, "dest": request["src"], "body": reply}) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
