"""Stores correctly, but serves each poll from max(asked offset, committed offset + 1), as a
consumer that trusts its committed position over the client's would: a client assigned from
its committed offset, or seeking to the beginning, never gets the messages below."""

from base import Node


class CommittedPositionNode(Node):
    def read(self, key: str, start: int) -> list[list]:
        return super().read(key, max(start, self.committed.get(key, -1) + 1))


if __name__ == "__main__":
    CommittedPositionNode().serve()
