"""Answers every fifth send with error 11 (temporarily-unavailable, a definite error promising
the send did not happen), yet stores the message: polls then read an aborted write (G1a)."""

from typing import Any

from base import Node


class FailingButStoringNode(Node):
    def handle(self, body: dict[str, Any]) -> dict[str, Any]:
        reply = super().handle(body)
        if body["type"] == "send" and self.sends % 5 == 0:
            return {"type": "error", "code": 11, "text": "temporarily unavailable (but stored anyway)"}
        return reply


if __name__ == "__main__":
    FailingButStoringNode().serve()
