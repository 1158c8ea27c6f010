"""The network's journal: the first messages of a run, each with its sender, receiver, type,
body and the times it was sent and received (or dropped), from which messages.svg is drawn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

#: Messages the journal keeps besides init and its replies (messages.svg draws them, a send
#: and a receipt each: Maelstrom's bound of 10,000 events); later ones are only counted.
JOURNAL_LIMIT = 5000
#: Messages Maelstrom leaves out of its diagram, and the journal's bound does not count.
UNDRAWN_TYPES = ("init", "init_ok")
#: Bytes of each body kept for the diagram's hover text.
BODY_BYTES = 600


@dataclass
class Message:
    id: int
    src: str
    dest: str
    type: str
    body: str
    sent: float  # seconds since the test began
    received: float | None = None  # None: never delivered (dropped, or still in flight at the end)
    dropped: bool = False


class Journal:
    """Messages in the order they were sent; `total` counts those past the limit too."""

    def __init__(self, limit: int = JOURNAL_LIMIT) -> None:
        self.limit = limit
        self.messages: list[Message] = []
        self.total = 0
        self._counted = 0  # kept messages that count toward the limit

    def sent(self, src: str, dest: str, type: str, body: bytes | dict[str, Any], at: float) -> Message | None:
        """A message leaving `src` (its body as JSON, or as data encoded only if it is kept);
        the entry to mark when it arrives, or None past the limit."""
        self.total += 1
        if type not in UNDRAWN_TYPES:
            if self._counted >= self.limit:
                return None
            self._counted += 1
        if not isinstance(body, bytes):
            body = msgspec.json.encode(body)
        text = body[:BODY_BYTES].decode("utf-8", "replace") + ("..." if len(body) > BODY_BYTES else "")
        message = Message(self.total - 1, src, dest, type, text, at)
        self.messages.append(message)
        return message

    @property
    def truncated(self) -> bool:
        return self.total > len(self.messages)
