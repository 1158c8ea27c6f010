"""Answers most requests correctly but every fifth send wrongly, in the way --mode names, so the
load generator's checks can be seen to catch it: an error reply, a reply naming another msg_id,
a reply of the wrong type, a reply with a field Maelstrom's schema does not allow, a line that is
not JSON, or no reply at all."""

import argparse
import json
import sys
from typing import Any

from base import Node


class MisreplyingNode(Node):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def reply(self, request: dict[str, Any], body: dict[str, Any]) -> str | None:
        line = super().reply(request, body)
        if request["body"]["type"] != "send" or self.sends % 5:
            return line
        if self.mode == "error":
            body = {"type": "error", "code": 11, "text": "try again", "in_reply_to": request["body"]["msg_id"]}
        elif self.mode == "in-reply-to":
            body["in_reply_to"] += 1_000_000
        elif self.mode == "type":
            body = {"type": "commit_offsets_ok", "in_reply_to": request["body"]["msg_id"]}
        elif self.mode == "extra-field":
            body["extra"] = True
        elif self.mode == "garbage":
            return "this is not a reply"
        elif self.mode == "silent":
            return None
        return json.dumps({"src": self.node_id, "dest": request["src"], "body": body})

    def serve(self) -> None:
        for line in sys.stdin:
            request = json.loads(line)
            reply = self.reply(request, self.handle(request["body"]))
            if reply is not None:
                print(reply, flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", required=True, choices=["error", "in-reply-to", "type", "extra-field", "garbage", "silent"])
    MisreplyingNode(parser.parse_args().mode).serve()
