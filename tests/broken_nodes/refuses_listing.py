"""Correct, but answers every other list_committed_offsets with error 11 (temporarily
unavailable): an assign is idempotent, so each such assign fails and leaves its client as it
was, never replaced."""

from typing import Any

from base import Node


class ListingRefusingNode(Node):
    def __init__(self) -> None:
        super().__init__()
        self.listings = 0

    def handle(self, body: dict[str, Any]) -> dict[str, Any]:
        if body["type"] == "list_committed_offsets":
            self.listings += 1
            if self.listings % 2 == 0:
                return {"type": "error", "code": 11, "text": "listing is temporarily unavailable"}
        return super().handle(body)


if __name__ == "__main__":
    ListingRefusingNode().serve()
