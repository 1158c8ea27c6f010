"""The SQLite log: the apsw connection and its pragmas, every SQL statement the node runs,
and transactions. Knows keys, offsets and message JSON text; knows nothing of envelopes."""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping

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


class Durability(enum.Enum):
    """What an acknowledgement survives: SQLite's `synchronous` setting in WAL mode."""

    FULL = "full"  # fsync at every commit: an ack survives a power cut or OS crash
    NORMAL = "normal"  # fsync at checkpoints only: an ack survives a process kill, not a power cut


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


def _check_is_ours(path: str) -> int:
    """Return the file's schema version, or refuse a file that is not a kafka-node log.

    Reads through a read-only connection: closing a read-write one would replay and
    checkpoint a WAL left behind, so a foreign, damaged or newer file would not stay
    byte-for-byte as it was. WAL side files that reading created beside a refused file are
    removed again.
    """
    side_files = [path + suffix for suffix in ("-wal", "-shm")]
    absent_before = [side for side in side_files if not os.path.exists(side)]
    try:
        return _schema_version_if_ours(path)
    except UnusableDatabase:
        for side in absent_before:
            with contextlib.suppress(FileNotFoundError):
                os.remove(side)
        raise


def _schema_version_if_ours(path: str) -> int:
    try:
        conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
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


class Storage:
    """One open kafka-node log file."""

    def __init__(self, conn: apsw.Connection, path: str, schema_version: int) -> None:
        self.conn = conn
        self.path = path
        self.schema_version = schema_version

    @classmethod
    def open(cls, path: str, durability: Durability = Durability.FULL) -> Storage:
        """Open (creating if absent) the log at `path` and bring its schema up to date."""
        apsw.bestpractice.library_logging()
        if os.path.exists(path):
            _check_is_ours(path)
        try:
            conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE)
        except apsw.Error as error:
            raise UnusableDatabase(f"cannot open {path} ({error})") from None
        try:
            _configure(conn, durability)
            version = migrations.migrate(conn)
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, version)

    def close(self) -> None:
        with contextlib.suppress(apsw.Error):
            self.conn.pragma("optimize")
        self.conn.close()

    def abandon(self) -> None:
        """Close without writing anything more: no optimize, no checkpoint of the WAL.

        For after an I/O error at COMMIT, when what the connection believes may not be what
        is on disk; the next open recovers from the disk alone.
        """
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

    def append(self, key: str, msg: str) -> int:
        """Append one message (JSON text) to a key's log; return its offset."""
        offset = self.conn.execute(
            """
            INSERT INTO log_keys (key, next_offset) VALUES (?, 1)
            ON CONFLICT (key) DO UPDATE SET next_offset = next_offset + 1
            RETURNING next_offset - 1
            """,
            (key,),
        ).get
        self.conn.execute(
            "INSERT INTO messages (key, log_offset, msg) VALUES (?, ?, ?)",
            (key, offset, msg),
        )
        return offset

    def read_from(self, offsets: Mapping[str, int], limit_per_key: int) -> dict[str, list[tuple[int, str]]]:
        """For each key, up to `limit_per_key` messages from its asked offset on, ascending.

        Offsets are dense, so a key's answer is one index range; all keys are read by one
        statement, however many the poll names.
        """
        found: dict[str, list[tuple[int, str]]] = {}
        if not offsets:
            return found
        rows = self.conn.execute(
            """
            SELECT wanted.key, m.log_offset, m.msg
            FROM json_each(:offsets) AS wanted
            CROSS JOIN messages AS m
              ON m.key = wanted.key
             AND m.log_offset >= wanted.value
             AND m.log_offset < wanted.value + :limit
            ORDER BY wanted.id, m.log_offset
            """,
            {"offsets": msgspec.json.encode(offsets).decode(), "limit": limit_per_key},
        )
        for key, offset, msg in rows:
            entries = found.get(key)
            if entries is None:
                entries = found[key] = []
            entries.append((offset, msg))
        return found

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


def fresh_database_path() -> str:
    """A path in a new temporary directory, for a run that did not name a database."""
    return os.path.join(tempfile.mkdtemp(prefix="kafka-node-"), "log.db")
