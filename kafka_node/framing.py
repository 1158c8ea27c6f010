"""Splits the node's input stream into lines of at most a given number of bytes. A longer
line is dropped as it streams in; only its beginning is kept, so that its asker can be told."""

from __future__ import annotations

from typing import NamedTuple

#: The longest input line the node reads unless told otherwise (`--max-line-bytes`).
DEFAULT_MAX_LINE_BYTES = 64 << 20

#: How much of an over-long line is kept to find who sent it.
OVERSIZED_HEAD_BYTES = 64 << 10

Line = bytes | bytearray


class Oversized(NamedTuple):
    """A line longer than the limit: its first OVERSIZED_HEAD_BYTES, the rest dropped."""

    head: bytes


class LineSplitter:
    """Turns chunks read from stdin into complete lines (without their newline).

    A line that arrives in several chunks grows in one buffer, so holding it costs its own
    size once; past `max_line_bytes` it is reported as `Oversized` at once and the rest of
    it is skipped up to its newline.
    """

    def __init__(self, max_line_bytes: int) -> None:
        self.max_line_bytes = max_line_bytes
        self._partial = bytearray()  # the start of a line whose newline has not arrived yet
        self._skipping = False  # inside a line already reported as oversized

    def feed(self, chunk: bytes) -> list[Line | Oversized]:
        """The lines (and oversized lines) that `chunk` completes, in order."""
        pieces = chunk.split(b"\n")
        tail = pieces.pop()  # after the last newline: the start of a line still to come
        lines: list[Line | Oversized] = []
        if pieces:
            first: Line | None = pieces[0]
            if self._skipping:  # the newline that ends a line already reported
                first, self._skipping = None, False
            elif self._partial:
                self._partial += pieces[0]
                first = self._take_partial()
            # Only the first line (which may carry earlier pieces) can be longer than the
            # chunk; the others need no check unless the chunk itself is over the limit.
            check = len(chunk) > self.max_line_bytes
            if first is not None:
                lines.append(self._within_limit(first) if check or len(first) > self.max_line_bytes else first)
            lines += map(self._within_limit, pieces[1:]) if check else pieces[1:]
        if tail and not self._skipping:
            self._partial += tail
            if len(self._partial) > self.max_line_bytes:
                lines.append(Oversized(bytes(self._partial[:OVERSIZED_HEAD_BYTES])))
                self._partial = bytearray()
                self._skipping = True
        return lines

    def _within_limit(self, line: Line) -> Line | Oversized:
        return line if len(line) <= self.max_line_bytes else Oversized(bytes(line[:OVERSIZED_HEAD_BYTES]))

    def end(self) -> list[Line | Oversized]:
        """At end of input: a last line without its newline still counts."""
        if self._partial:
            return [self._take_partial()]
        return []

    def _take_partial(self) -> bytearray:
        line, self._partial = self._partial, bytearray()
        return line
