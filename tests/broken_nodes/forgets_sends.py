"""Acknowledges every send, but drops every fifth message instead of storing it (its offset is
used up, so later messages of that key are stored above it): lost writes."""

from typing import Any

from base import Node


class ForgetfulNode(Node):
    def append(self, key: str, msg: Any) -> int:
        offset = super().append(key, msg)
        if self.sends % 5 == 0:
            del self.logs[key][offset]
        return offset


if __name__ == "__main__":
    ForgetfulNode().serve()
