"""The statements a replicated partition needs beyond the log's own: the file's identity, where a
partition's log ends, which epoch wrote each batch, what follows a batch, and truncation."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import apsw

#: A batch's place in its partition's log: its sequence number and the leader epoch that wrote
#: it. (0, 0) is the empty log, which every replica holds.
EMPTY = (0, 0)

#: One replicated message as stored: key, offset, batch, epoch, JSON text.
Row = tuple[str, int, int, int, str]


class ReplicaLog:
    """A partition's batches on one connection: the log's messages, seen by batch."""

    def __init__(self, conn: apsw.Connection) -> None:
        self.conn = conn

    def file_id(self) -> str:
        """The id drawn when the file was made (migration 003)."""
        file_id: str = self.conn.execute("SELECT file_id FROM file_identity").get
        return file_id

    def epoch_ranges(self, part: int) -> tuple[list[tuple[int, int]], int]:
        """The partition's (epoch, first seq) ranges, ascending, and its last batch's seq.
        Batches are numbered densely and epochs never decrease along the log, so each range's
        start is found by bisection: O(epochs · log batches) indexed lookups, whatever the
        log's size."""
        last_seq, epoch = self.last_batch(part)
        ranges = []
        end = last_seq
        while end >= 1:
            low, high = 1, end
            while low < high:  # the first batch of `epoch`
                middle = (low + high) // 2
                if (self.epoch_of(part, middle) or -1) >= epoch:
                    high = middle
                else:
                    low = middle + 1
            ranges.append((epoch, low))
            end = low - 1
            epoch = self.epoch_of(part, end) or 0
        ranges.reverse()
        return ranges, last_seq

    def last_batch(self, part: int) -> tuple[int, int]:
        """(seq, epoch) of the partition's last batch here; EMPTY if it has none."""
        row = self.conn.execute(
            "SELECT seq, epoch FROM messages WHERE part = ? AND seq IS NOT NULL ORDER BY seq DESC LIMIT 1",
            (part,)).fetchone()
        return (row[0], row[1]) if row else EMPTY

    def epoch_of(self, part: int, seq: int) -> int | None:
        """The epoch of batch `seq` here (0 for seq 0); None if this replica lacks it."""
        if seq == 0:
            return 0
        row = self.conn.execute(
            "SELECT epoch FROM messages WHERE part = ? AND seq = ? LIMIT 1", (part, seq)).fetchone()
        return row[0] if row else None

    def batches_after(self, part: int, seq: int, limit: int) -> list[Row]:
        """Whole batches after `seq`, oldest first, stopping after the batch in which the
        `limit`-th message falls."""
        rows = self.conn.execute(
            """
            SELECT key, log_offset, seq, epoch, msg FROM messages
            WHERE part = ? AND seq > ? AND seq <= coalesce(
                (SELECT seq FROM messages WHERE part = ? AND seq > ? ORDER BY seq LIMIT 1 OFFSET ?), 1 << 62)
            ORDER BY seq, key, log_offset
            """,
            (part, seq, part, seq, max(0, limit - 1)))
        return list(rows)

    def batch(self, part: int, seq: int) -> list[Row]:
        """The messages of one batch, in key and offset order."""
        rows = self.conn.execute(
            "SELECT key, log_offset, seq, epoch, msg FROM messages WHERE part = ? AND seq = ? ORDER BY key, log_offset",
            (part, seq))
        return list(rows)

    def append(self, part: int, entries: Sequence[Row]) -> None:
        """Store a leader's messages at the offsets it gave them; each key's next offset moves
        past the last. The caller has checked that each follows its key's log."""
        if not entries:
            return
        self.conn.executemany(
            "INSERT INTO messages (key, log_offset, msg, part, seq, epoch) VALUES (?, ?, ?, ?, ?, ?)",
            [(key, offset, msg, part, seq, epoch) for key, offset, seq, epoch, msg in entries])
        ends = {key: offset + 1 for key, offset, _, _, _ in entries}  # a key's offsets grow along the log: its last is its end
        self.conn.executemany(
            """
            INSERT INTO log_keys (key, next_offset) VALUES (?, ?)
            ON CONFLICT (key) DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)
            """,
            ends.items())

    def truncate_after(self, part: int, seq: int) -> int:
        """Delete every batch of the partition after `seq`; each key's next offset goes back
        to just past what is left of it. How many messages were deleted."""
        keys = [row[0] for row in self.conn.execute(
            "DELETE FROM messages WHERE part = ? AND seq > ? RETURNING key", (part, seq))]
        if keys:
            self.conn.executemany(
                """
                UPDATE log_keys SET next_offset =
                    (SELECT coalesce(max(log_offset) + 1, 0) FROM messages WHERE messages.key = log_keys.key)
                WHERE key = ?
                """,
                [(key,) for key in set(keys)])
        return len(keys)

    def committed_in(self, belongs: Callable[[str], bool]) -> dict[str, int]:
        """Every committed offset of the keys for which `belongs` is true."""
        rows = self.conn.execute("SELECT key, committed_offset FROM log_keys WHERE committed_offset IS NOT NULL")
        return {key: offset for key, offset in rows if belongs(key)}
