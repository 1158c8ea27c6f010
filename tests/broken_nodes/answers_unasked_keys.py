"""Stores correctly, but every poll reply also carries the log of the key last sent to, whether
or not the poll asked for it: the client must not adopt that key, and the checker flags it."""

from typing import Any

from base import Node


class OverEagerNode(Node):
    def __init__(self) -> None:
        super().__init__()
        self.last_key: str | None = None

    def append(self, key: str, msg: Any) -> int:
        self.last_key = key
        return super().append(key, msg)

    def handle(self, body: dict[str, Any]) -> dict[str, Any]:
        reply = super().handle(body)
        if body["type"] == "poll" and self.last_key is not None and self.last_key not in body["offsets"]:
            reply["msgs"][self.last_key] = self.read(self.last_key, 0)
        return reply


if __name__ == "__main__":
    OverEagerNode().serve()
