"""Forwards each part to its key's owner like ours, but sends it again after 1.5 s unanswered,
not knowing if it was applied: a partition that drops only the answer makes a duplicate."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import zlib
from typing import Any

from base import Node

#: Seconds a forwarded part waits for its owner's reply before it is sent again.
RETRY = 1.5


class ForwardingNode:
    def __init__(self) -> None:
        self.local = Node()  # the keys this node owns
        self.node_id = "n0"
        self.node_ids = ["n0"]
        self.msg_ids = itertools.count(1)
        self.waiting: dict[int, asyncio.Future] = {}  # msg_id of a forward -> its reply's body

    def owner(self, key: str) -> str:
        return self.node_ids[zlib.crc32(key.encode()) % len(self.node_ids)]

    def send(self, dest: str, body: dict[str, Any]) -> None:
        print(json.dumps({"src": self.node_id, "dest": dest, "body": body}), flush=True)

    async def forward(self, owner: str, part: dict[str, Any]) -> dict[str, Any]:
        """Send the part to its owner until it answers; its reply."""
        if owner == self.node_id:
            return self.local.handle(part)
        while True:
            msg_id = next(self.msg_ids)
            self.waiting[msg_id] = future = asyncio.get_running_loop().create_future()
            self.send(owner, {**part, "msg_id": msg_id})
            try:
                return await asyncio.wait_for(future, RETRY)
            except TimeoutError:
                continue  # not knowing whether the owner applied it
            finally:
                self.waiting.pop(msg_id, None)

    def parts(self, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
        kind = body["type"]
        if kind == "send":
            return {self.owner(body["key"]): {"type": "send", "key": body["key"], "msg": body["msg"]}}
        field = "keys" if kind == "list_committed_offsets" else "offsets"
        by_owner: dict[str, Any] = {}
        for key in body[field]:
            named = by_owner.setdefault(self.owner(key), [] if field == "keys" else {})
            if field == "keys":
                named.append(key)
            else:
                named[key] = body[field][key]
        return {owner: {"type": kind, field: named} for owner, named in by_owner.items()}

    async def answer(self, request: dict[str, Any]) -> None:
        body = request["body"]
        parts = self.parts(body)
        replies = await asyncio.gather(*(self.forward(owner, part) for owner, part in parts.items()))
        kind = body["type"]
        if kind == "send":
            reply = replies[0]
        elif kind == "poll":
            reply = {"type": "poll_ok", "msgs": {k: v for r in replies for k, v in r["msgs"].items()}}
        elif kind == "commit_offsets":
            reply = {"type": "commit_offsets_ok"}
        else:
            reply = {"type": "list_committed_offsets_ok", "offsets": {k: v for r in replies for k, v in r["offsets"].items()}}
        self.send(request["src"], {**reply, "in_reply_to": body["msg_id"]})

    def receive(self, request: dict[str, Any]) -> None:
        body = request["body"]
        if "in_reply_to" in body:
            future = self.waiting.get(body["in_reply_to"])
            if future is not None and not future.done():
                future.set_result(body)
        elif body["type"] == "init":
            self.node_id, self.node_ids = body["node_id"], sorted(body["node_ids"])
            self.send(request["src"], {"type": "init_ok", "in_reply_to": body["msg_id"]})
        elif request["src"] in self.node_ids:  # a part another node forwarded: ours to apply
            self.send(request["src"], {**self.local.handle(body), "in_reply_to": body["msg_id"]})
        else:
            asyncio.get_running_loop().create_task(self.answer(request))

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 24)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            self.receive(json.loads(line))


if __name__ == "__main__":
    asyncio.run(ForwardingNode().serve())
