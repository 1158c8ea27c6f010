"""A kafka node that keeps everything in Maelstrom's lin-kv service, so that any node can serve
any key: a key's whole log as one list at `log/<key>` (a message's offset is its index), its
committed offset at `committed/<key>`. Each request is served on a thread of its own, waiting
for the service's replies; subclasses choose how a message is appended."""

import itertools
import json
import sys
import threading
from typing import Any


class RpcError(Exception):
    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body.get("text"))
        self.code = body.get("code")


class KVNode:
    def __init__(self) -> None:
        self.node_id = "n?"
        self.out = threading.Lock()
        self.msg_ids = itertools.count(1)
        self.waiting: dict[int, tuple[threading.Event, list]] = {}

    # --- the wire ---------------------------------------------------------------------------

    def emit(self, dest: str, body: dict[str, Any]) -> None:
        line = json.dumps({"src": self.node_id, "dest": dest, "body": body})
        with self.out:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def rpc(self, dest: str, body: dict[str, Any]) -> dict[str, Any]:
        msg_id = next(self.msg_ids)
        done: tuple[threading.Event, list] = (threading.Event(), [])
        self.waiting[msg_id] = done
        self.emit(dest, {**body, "msg_id": msg_id})
        if not done[0].wait(5):
            self.waiting.pop(msg_id, None)
            raise RpcError({"code": 0, "text": "timeout"})
        reply = done[1][0]
        if reply.get("type") == "error":
            raise RpcError(reply)
        return reply

    def kv_read(self, key: str, default: Any = None) -> Any:
        try:
            return self.rpc("lin-kv", {"type": "read", "key": key})["value"]
        except RpcError as error:
            if error.code == 20:
                return default
            raise

    def kv_write(self, key: str, value: Any) -> None:
        self.rpc("lin-kv", {"type": "write", "key": key, "value": value})

    def kv_cas(self, key: str, old: Any, new: Any) -> bool:
        try:
            self.rpc("lin-kv", {"type": "cas", "key": key, "from": old, "to": new, "create_if_not_exists": True})
            return True
        except RpcError as error:
            if error.code == 22:
                return False
            raise

    # --- the kafka requests -----------------------------------------------------------------

    def append(self, key: str, msg: Any) -> int:
        """Add msg to the key's log; its offset."""
        raise NotImplementedError

    def read_log(self, key: str, start: int, into: dict[str, list]) -> None:
        """Up to 10 messages of `key` from `start`."""
        log = self.kv_read(f"log/{key}", default=[])
        pairs = [[offset, log[offset]] for offset in range(max(0, start), min(len(log), start + 10))]
        if pairs:
            into[key] = pairs

    def handle(self, body: dict[str, Any]) -> dict[str, Any]:
        kind = body["type"]
        if kind == "send":
            return {"type": "send_ok", "offset": self.append(body["key"], body["msg"])}
        if kind == "poll":
            msgs: dict[str, list] = {}
            readers = [threading.Thread(target=self.read_log, args=(key, start, msgs))
                       for key, start in body["offsets"].items()]
            for reader in readers:
                reader.start()
            for reader in readers:
                reader.join()
            return {"type": "poll_ok", "msgs": msgs}
        if kind == "commit_offsets":
            for key, offset in body["offsets"].items():
                while True:
                    current = self.kv_read(f"committed/{key}")
                    if (current is not None and current >= offset) or self.kv_cas(f"committed/{key}", current, offset):
                        break
            return {"type": "commit_offsets_ok"}
        if kind == "list_committed_offsets":
            listed = {key: self.kv_read(f"committed/{key}") for key in body["keys"]}
            return {"type": "list_committed_offsets_ok", "offsets": {k: v for k, v in listed.items() if v is not None}}
        return {"type": "error", "code": 10, "text": f"unsupported type {kind}"}

    def answer(self, request: dict[str, Any]) -> None:
        body = request["body"]
        try:
            reply = self.handle(body)
        except RpcError as error:
            reply = {"type": "error", "code": 13, "text": f"lin-kv: {error}"}
        self.emit(request["src"], {**reply, "in_reply_to": body.get("msg_id")})

    def serve(self) -> None:
        for line in sys.stdin:
            message = json.loads(line)
            body = message["body"]
            if body.get("in_reply_to") in self.waiting:
                event, slot = self.waiting.pop(body["in_reply_to"])
                slot.append(body)
                event.set()
            elif body["type"] == "init":
                self.node_id = body["node_id"]
                self.emit(message["src"], {"type": "init_ok", "in_reply_to": body["msg_id"]})
            else:
                threading.Thread(target=self.answer, args=(message,), daemon=True).start()
