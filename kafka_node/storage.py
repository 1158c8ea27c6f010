"""The SQLite log: the apsw connection and its pragmas, every SQL statement the node runs,
and transactions. Knows keys, offsets and message JSON text; knows nothing of envelopes."""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence

import apsw
import apsw.bestpractice
import msgspec

from kafka_node import migrations

log = logging.getLogger(__name__)

#: Marks a file as a kafka-node log ('KafN'); set by migrations/001.
APPLICATION_ID = 0x4B61664E

#: How long a statement waits for a lock held by another connection (the sqlite3 shell
#: during a checkpoint, or a second node on the same file) before failing with BusyError.
#: Shorter than Maelstrom's 5 s RPC timeout, so the client hears a definite error instead.
BUSY_TIMEOUT_MS = 2_000


#: WAL size, in pages, at which the WAL is copied back into the database file (SQLite's own
#: automatic checkpoint uses the same size, but runs inside the COMMIT of whichever request
#: crosses it).
CHECKPOINT_PAGES = 1000

#: WAL size, in pages, at which the writer checkpoints between batches itself: under a
#: constant stream of commits the background checkpoint never catches the WAL's end, and
#: SQLite only restarts a WAL that has been checkpointed completely, so it would grow without
#: bound.
CATCH_UP_PAGES = 4 * CHECKPOINT_PAGES


class Durability(enum.Enum):
    """What an acknowledgement survives: SQLite's `synchronous` setting in WAL mode."""

    FULL = "full"  # fsync at every commit: an ack survives a power cut or OS crash
    NORMAL = "normal"  # fsync at checkpoints only: an ack survives a process kill, not a power cut
    OFF = "off"  # never fsync (for measuring what durability costs): a power cut may corrupt the file


#: Any failure reported by SQLite.
StorageError = apsw.Error

#: Failures of the database as a whole rather than of one statement's data: retrying the
#: requests of a batch one by one would only meet them again, each after its own wait.
_WHOLE_DATABASE_ERRORS = (
    apsw.BusyError, apsw.LockedError, apsw.FullError, apsw.IOError, apsw.ReadOnlyError,
    apsw.CantOpenError, apsw.CorruptError, apsw.NotADBError, apsw.NoMemError,
)


def is_whole_database_error(error: BaseException) -> bool:
    return isinstance(error, _WHOLE_DATABASE_ERRORS)


def cache_untrustworthy_after(error: BaseException) -> bool:
    """Whether, after this error at COMMIT, the connection's view may differ from the disk."""
    return isinstance(error, apsw.IOError)


class UnusableDatabase(Exception):
    """The file at the database path is not one this node may open; it was left untouched."""


def _check_is_ours(path: str, vfs: str | None) -> int:
    """Return the file's schema version, or refuse a file that is not a kafka-node log.

    Reads through a read-only connection: closing a read-write one would replay and
    checkpoint a WAL left behind, so a foreign, damaged or newer file would not stay
    byte-for-byte as it was. WAL side files that reading created beside a refused file are
    removed again.
    """
    side_files = [path + suffix for suffix in ("-wal", "-shm")]
    absent_before = [side for side in side_files if not os.path.exists(side)]
    try:
        return _schema_version_if_ours(path, vfs)
    except UnusableDatabase:
        for side in absent_before:
            with contextlib.suppress(FileNotFoundError):
                os.remove(side)
        raise


def _schema_version_if_ours(path: str, vfs: str | None) -> int:
    try:
        conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY, vfs=vfs)
        try:
            version = conn.pragma("user_version")
            application_id = conn.pragma("application_id")
            objects = conn.execute("SELECT count(*) FROM sqlite_schema").get
        finally:
            conn.close()
    except apsw.Error as error:
        raise UnusableDatabase(f"{path} is not a readable SQLite database ({error})") from None
    latest = migrations.latest_version()
    if version > latest:
        raise UnusableDatabase(
            f"{path} has schema version {version}, newer than {latest}, the newest this "
            "kafka-node knows; upgrade kafka-node to open it"
        )
    if version == 0 and objects:
        raise UnusableDatabase(f"{path} is a SQLite database of another program (it has tables but no kafka-node schema)")
    if version > 0 and application_id != APPLICATION_ID:
        raise UnusableDatabase(
            f"{path} is a SQLite database of another program (application_id {application_id:#x}, not {APPLICATION_ID:#x})"
        )
    return version


def _configure(conn: apsw.Connection, durability: Durability) -> None:
    """apsw's best-practice set-up, plus what it leaves to each connection.

    The best-practice functions are applied one by one, after the file has been checked,
    rather than as a global hook at open, because switching to WAL writes to the file.
    https://rogerbinns.github.io/apsw/bestpractice.html
    """
    apsw.bestpractice.connection_busy_timeout(conn, BUSY_TIMEOUT_MS)
    apsw.bestpractice.connection_wal(conn)
    apsw.bestpractice.connection_enable_foreign_keys(conn)
    apsw.bestpractice.connection_dqs(conn)
    apsw.bestpractice.connection_recursive_triggers(conn)
    apsw.bestpractice.connection_optimize(conn)
    conn.pragma("synchronous", durability.name)
    conn.transaction_mode = "IMMEDIATE"


class _Checkpointer:
    """Checkpoints the WAL on a connection and thread of its own, so that no request waits
    for a checkpoint's writes and fsyncs; it replaces SQLite's automatic checkpoint.

    apsw releases the GIL while SQLite works, and a PASSIVE checkpoint never blocks the
    writer, so the node keeps committing while the file catches up.
    https://sqlite.org/wal.html#application_initiated_checkpoints
    """

    def __init__(self, path: str, durability: Durability, vfs: str | None) -> None:
        self._conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READWRITE, vfs=vfs)
        apsw.bestpractice.connection_busy_timeout(self._conn, BUSY_TIMEOUT_MS)
        self._conn.pragma("synchronous", durability.name)
        self._due = threading.Event()
        self._stopping = False
        self.wal_pages = 0
        self._thread = threading.Thread(target=self._run, name="checkpointer", daemon=True)
        self._thread.start()

    def after_commit(self, _conn: apsw.Connection, _database: str, wal_pages: int) -> int:
        """SQLite's WAL hook, called in the committing thread: only wakes the checkpointer."""
        self.wal_pages = wal_pages
        if wal_pages >= CHECKPOINT_PAGES:
            self._due.set()
        return apsw.SQLITE_OK

    def _run(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            if self._stopping:
                return
            try:
                self._conn.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_PASSIVE)
            except apsw.Error as error:
                log.warning("background checkpoint failed (it will be retried): %s", error)

    def stop(self) -> None:
        self._stopping = True
        self._due.set()
        self._thread.join()
        self._conn.close()


class Storage:
    """One open kafka-node log file."""

    def __init__(self, conn: apsw.Connection, path: str, schema_version: int, durability: Durability,
                 vfs: str | None = None) -> None:
        self.conn = conn
        self.path = path
        self.schema_version = schema_version
        self._checkpointer = _Checkpointer(path, durability, vfs)
        conn.set_wal_hook(self._checkpointer.after_commit)

    @classmethod
    def open(cls, path: str, durability: Durability = Durability.FULL, vfs: str | None = None) -> Storage:
        """Open (creating if absent) the log at `path` and bring its schema up to date.

        `vfs` names a registered SQLite VFS to use instead of the default one (the fault
        tests wrap the real VFS to make writes and fsyncs fail)."""
        apsw.bestpractice.library_logging()
        if os.path.exists(path):
            _check_is_ours(path, vfs)
        try:
            conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE, vfs=vfs)
        except apsw.Error as error:
            raise UnusableDatabase(f"cannot open {path} ({error})") from None
        try:
            _configure(conn, durability)
            version = migrations.migrate(conn)
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, version, durability, vfs)

    def checkpoint_if_far_behind(self) -> None:
        """Checkpoint on the writer's own connection if the WAL has outgrown the background
        checkpoint; the node calls this between batches, after the replies are written, so
        no reply waits for it and the WAL restarts from its beginning."""
        if self._checkpointer.wal_pages < CATCH_UP_PAGES:
            return
        self._checkpointer.wal_pages = 0
        try:
            self.conn.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_PASSIVE)
        except apsw.Error as error:
            log.warning("checkpoint between batches failed (it will be retried): %s", error)

    def close(self) -> None:
        """Close, leaving a checkpointed file and no WAL behind."""
        self._checkpointer.stop()
        with contextlib.suppress(apsw.Error):
            self.conn.pragma("optimize")
        self.conn.close()

    def abandon(self) -> None:
        """Close without writing anything more: no optimize, no checkpoint of the WAL.

        For after an I/O error at COMMIT, when what the connection believes may not be what
        is on disk; the next open recovers from the disk alone.
        """
        self._checkpointer.stop()
        with contextlib.suppress(apsw.Error):
            self.conn.config(apsw.SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1)
        self.conn.close()

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[None]:
        """BEGIN ... COMMIT, rolled back if the body raises.

        A writing transaction takes the write lock at BEGIN (IMMEDIATE), so a lock held
        elsewhere fails before any work is done; a reading one (DEFERRED) never waits for it.
        """
        self.conn.transaction_mode = "IMMEDIATE" if write else "DEFERRED"
        with self.conn:
            yield

    def append_many(self, entries: Sequence[tuple[str, str]]) -> list[int]:
        """Append messages (key, JSON text) in order; return the offset each one got.

        One statement reserves each key's offsets (its counter moves by the number of its
        messages) and one `executemany` inserts them all, however many the batch holds.
        """
        counts: dict[str, int] = {}
        for key, _ in entries:
            counts[key] = counts.get(key, 0) + 1
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
        self.conn.executemany("INSERT INTO messages (key, log_offset, msg) VALUES (?, ?, ?)", rows)
        return offsets

    def read_from(self, offsets: Mapping[str, int], limit_per_key: int) -> str:
        """For each key, up to `limit_per_key` messages from its asked offset on, ascending,
        as the JSON text of a poll reply's `msgs`: {"key": [[offset, msg], ...], ...}.

        Offsets are dense, so a key's answer is one range of the primary key, read in
        order; SQLite assembles the whole reply, so a poll naming thousands of keys costs
        one statement and no Python object per message. Keys with nothing are left out.
        """
        return self.conn.execute(
            """
            SELECT '{' || coalesce(group_concat(json_quote(wanted.key) || ':[' || (
                       SELECT group_concat(entry, ',') FROM (
                         SELECT '[' || log_offset || ',' || msg || ']' AS entry
                         FROM messages
                         WHERE key = wanted.key
                           AND log_offset >= wanted.value
                           AND log_offset < wanted.value + :limit
                         ORDER BY log_offset)
                     ) || ']', ','), '') || '}'
            FROM json_each(:offsets) AS wanted
            """,
            {"offsets": msgspec.json.encode(offsets).decode(), "limit": limit_per_key},
        ).get

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

    def fill_synthetic(self, keys: int, messages_per_key: int, msg: str) -> None:
        """Bulk-load keys "0".."keys-1", each with messages_per_key copies of `msg` (JSON text).

        For benchmarks of a large log: millions of rows in seconds, in key order, one
        transaction per slice of keys so the WAL stays small.
        """
        slice_size = max(1, 1_000_000 // messages_per_key)
        for first in range(0, keys, slice_size):
            with self.transaction():
                self.conn.execute(
                    """
                    WITH RECURSIVE
                      numbers(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM numbers WHERE i + 1 < :last),
                      offsets(o) AS (SELECT 0 UNION ALL SELECT o + 1 FROM offsets WHERE o + 1 < :per_key),
                      new_keys(key) AS (SELECT CAST(i AS TEXT) FROM numbers ORDER BY 1)
                    INSERT INTO messages (key, log_offset, msg)
                    SELECT key, o, :msg FROM new_keys CROSS JOIN offsets
                    """,
                    {"first": first, "last": min(keys, first + slice_size), "per_key": messages_per_key, "msg": msg},
                )
                self.conn.execute(
                    """
                    WITH RECURSIVE numbers(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM numbers WHERE i + 1 < :last)
                    INSERT INTO log_keys (key, next_offset) SELECT CAST(i AS TEXT), :per_key FROM numbers WHERE true
                    ON CONFLICT (key) DO UPDATE SET next_offset = excluded.next_offset
                    """,
                    {"first": first, "last": min(keys, first + slice_size), "per_key": messages_per_key},
                )
            self.conn.pragma("wal_checkpoint", "TRUNCATE")


def fresh_database_path() -> str:
    """A path in a new temporary directory, for a run that did not name a database."""
    return os.path.join(tempfile.mkdtemp(prefix="kafka-node-"), "log.db")
