"""Correct, but answers every other list_committed_offsets with an error, alternately 11
(temporarily unavailable, definite) and 13 (crash, indefinite): an assign is idempotent, so
either error fails it and leaves its client as it was, never replaced."""

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
                code = 11 if self.listings % 4 == 0 else 13
                return {"type": "error", "code": code, "text": "listing failed"}
        return super().handle(body)


if __name__ == "__main__":
    ListingRefusingNode().serve()
