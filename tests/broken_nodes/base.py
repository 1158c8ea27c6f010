"""A tiny in-memory kafka node for the runner's tests (correct, but it keeps nothing across a
restart); each broken variant overrides one method to misbehave in one way."""

from __future__ import annotations

import json
import sys
from typing import Any


class Node:
    """Dense offsets from 0 per key, polls of up to 100 messages per key, commits kept as a max."""

    def __init__(self) -> None:
        self.logs: dict[str, dict[int, Any]] = {}
        self.next_offsets: dict[str, int] = {}
        self.committed: dict[str, int] = {}
        self.sends = 0
        self.node_id = "n0"

    def append(self, key: str, msg: Any) -> int:
        """Store msg; the offset to acknowledge."""
        offset = self.next_offsets.get(key, 0)
        self.next_offsets[key] = offset + 1
        self.logs.setdefault(key, {})[offset] = msg
        return offset

    def read(self, key: str, start: int) -> list[list[Any]]:
        log = self.logs.get(key, {})
        return [[offset, log[offset]] for offset in sorted(log) if offset >= start][:100]

    def handle(self, body: dict[str, Any]) -> dict[str, Any]:
        kind = body["type"]
        if kind == "init":
            self.node_id = body["node_id"]
            return {"type": "init_ok"}
        if kind == "send":
            self.sends += 1
            return {"type": "send_ok", "offset": self.append(body["key"], body["msg"])}
        if kind == "poll":
            msgs = {key: self.read(key, start) for key, start in body["offsets"].items()}
            return {"type": "poll_ok", "msgs": {key: pairs for key, pairs in msgs.items() if pairs}}
        if kind == "commit_offsets":
            for key, offset in body["offsets"].items():
                self.committed[key] = max(offset, self.committed.get(key, -1))
            return {"type": "commit_offsets_ok"}
        if kind == "list_committed_offsets":
            return {"type": "list_committed_offsets_ok",
                    "offsets": {key: self.committed[key] for key in body["keys"] if key in self.committed}}
        return {"type": "error", "code": 10, "text": f"unsupported type {kind}"}

    def reply(self, request: dict[str, Any], body: dict[str, Any]) -> str:
        body["in_reply_to"] = request["body"].get("msg_id")
        return json.dumps({"src": self.node_id, "dest": request["src"], "body": body})

    def serve(self) -> None:
        for line in sys.stdin:
            request = json.loads(line)
            print(self.reply(request, self.handle(request["body"])), flush=True)


if __name__ == "__main__":
    Node().serve()
