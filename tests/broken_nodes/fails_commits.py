"""A node that answers every commit_offsets with error 11 (temporarily unavailable), and
serves everything else correctly."""

from typing import Any

from base import Node


class CommitRefusingNode(Node):
    def handle(self, body: dict[str, Any]) -> dict[str, Any]:
        if body["type"] == "commit_offsets":
            return {"type": "error", "code": 11, "text": "commits are temporarily unavailable"}
        return super().handle(body)


if __name__ == "__main__":
    CommitRefusingNode().serve()
