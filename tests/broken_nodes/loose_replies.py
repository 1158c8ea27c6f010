"""Stores every send, but answers some of them loosely: every fifth with error 11 and no text
(still definite: the send fails, yet it was stored), every sixth with an error that has no
code (indefinite: info), and every seventh with an extra field in send_ok (Maelstrom's reply
schema allows no other field: the reply is malformed, info)."""

from typing import Any

from base import Node


class LooseNode(Node):
    def handle(self, body: dict[str, Any]) -> dict[str, Any]:
        reply = super().handle(body)
        if body["type"] != "send":
            return reply
        if self.sends % 5 == 0:
            return {"type": "error", "code": 11}
        if self.sends % 6 == 0:
            return {"type": "error", "text": "something went wrong"}
        if self.sends % 7 == 0:
            return {**reply, "debug": "stored"}
        return reply


if __name__ == "__main__":
    LooseNode().serve()
