"""JSON lines between a client and a node program: messages encoded one per line, and the
node's output cut into complete lines however the reads of its pipe happen to split it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()


def encode_line(message: Any) -> bytes:
    """One message as a JSON line, newline included."""
    return _encoder.encode(message) + b"\n"


def encode_lines(messages: Iterable[Any]) -> bytes:
    """Messages as JSON lines, each ending with a newline, in one buffer."""
    return _encoder.encode_lines(messages)


def split_lines(block: bytes) -> list[bytes]:
    """The lines of a block of complete lines, each with its newline. Only a newline ends a
    line: a carriage return is JSON whitespace, as it is to a node reading its stdin."""
    return [line + b"\n" for line in block.split(b"\n")[:-1]]


class LineBuffer:
    """Bytes read from a pipe (a node's stdout, say), handed back as complete lines.

    A read ends anywhere, often inside a line; what follows the last newline waits here for
    the rest of its line, kept in pieces so that a line of many reads costs its size once.
    The complete lines come back as one block, which a decoder takes in one call (fastest)
    or `split_lines` cuts into single lines.
    """

    def __init__(self, pending: bytes = b"") -> None:
        self._pieces = [pending] if pending else []  # the start of a line whose newline is still to come
        self.pending_bytes = len(pending)

    def feed(self, chunk: bytes) -> bytes:
        """The complete lines that `chunk` finishes, newlines included; b"" when none."""
        cut = chunk.rfind(b"\n") + 1
        if not cut:
            if chunk:
                self._pieces.append(chunk)
                self.pending_bytes += len(chunk)
            return b""
        lines = chunk[:cut]
        if self._pieces:
            lines = b"".join([*self._pieces, lines])
            self._pieces.clear()
        rest = chunk[cut:]
        if rest:
            self._pieces.append(rest)
        self.pending_bytes = len(rest)
        return lines

    def take_pending(self) -> bytes:
        """What is left without a newline (at the end of output, a last unterminated line)."""
        pending = b"".join(self._pieces)
        self._pieces.clear()
        self.pending_bytes = 0
        return pending
