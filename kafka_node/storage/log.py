"""The log's statements, every SQL statement the node runs on its file: appending, reading from
an offset, committing offsets and listing them, and the transactions and savepoints around them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import apsw
import msgspec

#: The ranges a poll reads, from its JSON text (key -> [first offset, count]), in the order asked;
#: materialized, so that each is computed once and the join walks each key's primary key range.
_WANTED = """
WITH wanted AS MATERIALIZED (
  SELECT id AS position, key, value ->> 0 AS first_offset, (value ->> 0) + (value ->> 1) AS end_offset,
         '],' || json_quote(key) || ':[' AS head
  FROM json_each(:ranges)
)"""
#: Each range's messages, walking its key's primary key range in offset order.
_IN_RANGES = """FROM wanted
CROSS JOIN messages ON messages.key = wanted.key
                   AND messages.log_offset >= wanted.first_offset
                   AND messages.log_offset < wanted.end_offset"""


class Log:
    """The statements of one open log file, on its connection. Knows keys, offsets and
    messages' JSON text; knows nothing of envelopes.

    Writing transactions are numbered as they commit (`commits`), so that what waits for one
    to be durable can say which."""

    def __init__(self, conn: apsw.Connection) -> None:
        self.conn = conn
        self.commits = 0
        #: On a partition's leader, while a transaction is open: each key's (partition, batch,
        #: epoch), stored with every message sent to it (see `replica.ReplicaLog`); else None.
        self.stamp: Callable[[str], tuple[int, int, int]] | None = None

    # --- transactions ---------------------------------------------------------------

    def begin(self) -> None:
        """BEGIN a writing transaction, taking the write lock at once (IMMEDIATE), so that a
        lock held elsewhere fails before any work is done. Reads need none: each of their
        statements reads one snapshot by itself."""
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> int:
        """COMMIT; the commit's number. If that fails, roll back what SQLite has not already
        rolled back itself, and raise the COMMIT's error."""
        try:
            self.conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise
        self.commits += 1
        return self.commits

    def rollback(self) -> None:
        """Roll back the open transaction, if SQLite has not already done so after an error
        (a ROLLBACK without a transaction would only log an error of its own)."""
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """A savepoint inside the open transaction: everything done in the block is undone if
        the block raises, and nothing else is.

        Not apsw's nested `with conn:`, which does the same until SQLite has rolled back the
        whole transaction by itself (as it does on a full disk or an I/O error): then its
        ROLLBACK TO fails, logs two errors and raises an SQLError in place of the real one.
        Here the real error is raised and `in_transaction` tells that the batch is gone.
        https://sqlite.org/lang_savepoint.html
        """
        self.conn.execute("SAVEPOINT request")
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK TO request; RELEASE request")
            raise
        self.conn.execute("RELEASE request")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT around a block, rolled back if the block raises."""
        self.begin()
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        self.commit()

    # --- the statements -------------------------------------------------------------

    def append_many(self, entries: Sequence[tuple[str, str]]) -> list[int]:
        """Append messages (key, JSON text) in order; return the offset each one got.

        One statement reserves each key's offsets (its counter moves by the number of its
        messages) and one `executemany` inserts them all, however many the batch holds.
        """
        counts: dict[str, int] = {}
        for key, _ in entries:
            counts[key] = counts.get(key, 0) + 1
        if len(counts) == 1:  # one key (a lone send): its counter alone, without a JSON list of them
            ((key, count),) = counts.items()
            next_free = {key: self.conn.execute(
                """
                INSERT INTO log_keys (key, next_offset) VALUES (?, ?)
                ON CONFLICT (key) DO UPDATE SET next_offset = next_offset + excluded.next_offset
                RETURNING next_offset
                """,
                (key, count),
            ).get - count}
        else:
            reserved = self.conn.execute(
                """
                INSERT INTO log_keys (key, next_offset)
                SELECT key, value FROM json_each(?) WHERE true
                ON CONFLICT (key) DO UPDATE SET next_offset = next_offset + excluded.next_offset
                RETURNING key, next_offset
                """,
                (msgspec.json.encode(counts).decode(),),
            )
            next_free = {key: next_offset - counts[key] for key, next_offset in reserved}
        offsets = []
        rows = []
        for key, msg in entries:
            offset = next_free[key]
            next_free[key] = offset + 1
            offsets.append(offset)
            rows.append((key, offset, msg))
        if self.stamp is None:
            self.conn.executemany("INSERT INTO messages (key, log_offset, msg) VALUES (?, ?, ?)", rows)
        else:
            stamp = self.stamp
            self.conn.executemany("INSERT INTO messages (key, log_offset, msg, part, seq, epoch) VALUES (?, ?, ?, ?, ?, ?)",
                                  [(*row, *stamp(row[0])) for row in rows])
        return offsets

    def read_from(self, offsets: Mapping[str, int], limit_per_key: int, max_bytes: int,
                  below: Mapping[str, int] | None = None) -> bytes:
        """For each key, up to `limit_per_key` messages from its asked offset on, ascending,
        and only below its offset in `below` if it has one, as the JSON text of a poll reply's
        `msgs`: {"key": [[offset, msg], ...], ...}.

        The messages' JSON text adds up to at most `max_bytes`, counted over the keys in the
        order asked: each key gets the prefix of its messages that fits, and the first
        message is returned whatever its size, so a reader always progresses. Keys with
        nothing are left out.

        Offsets are dense, so a key's answer is one range of the primary key. The budget is
        checked on the messages' sizes alone (SQLite reads them from the record headers);
        only the messages kept are then read, and SQLite assembles the reply, so a poll
        naming thousands of keys creates no Python object per message.
        """
        ranges = {key: (first, limit_per_key) for key, first in offsets.items()}
        capped = False
        for key, end in (below or {}).items():
            if key in ranges and (count := min(limit_per_key, end - ranges[key][0])) < limit_per_key:
                capped = True
                if count > 0:
                    ranges[key] = (ranges[key][0], count)
                else:
                    del ranges[key]
        if not ranges:
            return b"{}"
        asked = msgspec.json.encode(ranges).decode()
        total = self._size_of(asked) if capped else self._size_from(offsets, limit_per_key)
        if total is None:
            return b"{}"
        return self._messages_in(asked if total <= max_bytes else self._ranges_within(asked, max_bytes))

    def _size_from(self, offsets: Mapping[str, int], limit_per_key: int) -> int | None:
        """The JSON text's size of up to `limit_per_key` messages per key from each asked offset."""
        size: int | None = self.conn.execute(
            """
            SELECT sum(octet_length(messages.msg))
            FROM json_each(:offsets) AS wanted
            JOIN messages ON messages.key = wanted.key
                         AND messages.log_offset >= wanted.value
                         AND messages.log_offset < wanted.value + :limit
            """,
            {"offsets": msgspec.json.encode(offsets).decode(), "limit": limit_per_key},
        ).get
        return size

    def _size_of(self, ranges: str) -> int | None:
        """The JSON text's size of the messages in these ranges (of a poll some of whose keys
        may be read only below an offset)."""
        size: int | None = self.conn.execute(
            f"""
            {_WANTED}
            SELECT sum(octet_length(messages.msg))
            {_IN_RANGES}
            """,
            {"ranges": ranges},
        ).get
        return size

    def _ranges_within(self, asked: str, max_bytes: int) -> str:
        """The ranges' prefixes (first offset, count) that fit in `max_bytes`, in the order
        asked (only for a poll whose messages do not all fit: a window over sizes)."""
        rows = self.conn.execute(
            f"""
            {_WANTED}
            SELECT key, first_offset, count(*)
            FROM (SELECT wanted.position, wanted.key, wanted.first_offset,
                         sum(octet_length(messages.msg)) OVER running AS bytes_so_far,
                         row_number() OVER running AS nth
                  {_IN_RANGES}
                  WINDOW running AS (ORDER BY wanted.position, messages.log_offset ROWS UNBOUNDED PRECEDING))
            WHERE bytes_so_far <= :max_bytes OR nth = 1
            GROUP BY position
            ORDER BY position
            """,
            {"ranges": asked, "max_bytes": max_bytes},
        )
        return msgspec.json.encode({key: (first, count) for key, first, count in rows}).decode()

    def _messages_in(self, ranges: str) -> bytes:
        """The reply's `msgs` for these ranges (JSON: key -> [first offset, count]), in their order.

        One join, each message appended once to one string: each key's first message brings
        the key (`],"key":[`), so the text needs only its first two bytes dropped and its
        brackets closed. The join runs the ranges in order and each range in offset order
        (the primary key's), which is the order group_concat sees them in.
        """
        body = self.conn.execute(
            f"""
            {_WANTED}
            SELECT CAST(group_concat(printf('%s[%d,%s]', iif(messages.log_offset = wanted.first_offset, wanted.head, ','),
                                            messages.log_offset, messages.msg), '') AS BLOB)
            {_IN_RANGES}
            """,
            {"ranges": ranges},
        ).get
        if body is None:
            return b"{}"
        return b"".join((b"{", memoryview(body)[2:], b"]}"))

    def commit_offsets(self, offsets: Mapping[str, int]) -> None:
        """Record committed offsets; a key's committed offset never moves backwards."""
        self.conn.executemany(
            """
            INSERT INTO log_keys (key, committed_offset) VALUES (?, ?)
            ON CONFLICT (key) DO UPDATE
            SET committed_offset = max(coalesce(committed_offset, -1), excluded.committed_offset)
            """,
            offsets.items(),
        )

    def committed_offsets(self, keys: Iterable[str]) -> dict[str, int]:
        """The committed offset of each named key that has one."""
        rows = self.conn.execute(
            """
            SELECT key, committed_offset
            FROM log_keys
            WHERE committed_offset IS NOT NULL
              AND key IN (SELECT value FROM json_each(?))
            """,
            (msgspec.json.encode(list(keys)).decode(),),
        )
        return dict(rows)
