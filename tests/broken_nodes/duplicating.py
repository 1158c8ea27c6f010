"""Stores every fourth message twice, at two successive offsets, acknowledging the first."""

from typing import Any

from base import Node


class DuplicatingNode(Node):
    def append(self, key: str, msg: Any) -> int:
        offset = super().append(key, msg)
        if self.sends % 4 == 0:
            super().append(key, msg)
        return offset


if __name__ == "__main__":
    DuplicatingNode().serve()
