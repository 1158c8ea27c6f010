"""Gives each key's messages descending offsets (the first at 1000, the next at 999, ...):
every offset is unique, but each send lands before the previous one in the log, so one
client's successive sends to a key go backwards (nonmonotonic-send)."""

from typing import Any

from base import Node

TOP = 1000


class DescendingNode(Node):
    def append(self, key: str, msg: Any) -> int:
        offset = TOP - self.next_offsets.get(key, 0)
        self.next_offsets[key] = TOP - offset + 1
        self.logs.setdefault(key, {})[offset] = msg
        return offset


if __name__ == "__main__":
    DescendingNode().serve()
