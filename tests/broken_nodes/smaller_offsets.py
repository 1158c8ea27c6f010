"""Stores correctly, but acknowledges every third message of a key (offsets 2, 5, 8, ...) with an
offset two lower than the one it used, so a client's sends to a key can see offsets go back."""

from typing import Any

from base import Node


class SmallerOffsetNode(Node):
    def append(self, key: str, msg: Any) -> int:
        offset = super().append(key, msg)
        return offset - 2 if offset % 3 == 2 else offset


if __name__ == "__main__":
    SmallerOffsetNode().serve()
