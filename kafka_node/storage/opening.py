"""Opening a log file: refusing one that is not ours (left byte-for-byte as it was), the
connection's pragmas, the schema's migrations, and where a log's file is when none is named."""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import tempfile

import apsw
import apsw.bestpractice
import apsw.ext

from kafka_node import migrations

logger = logging.getLogger("kafka_node.storage")

#: Marks a file as a kafka-node log ('KafN'); set by migrations/001.
APPLICATION_ID = 0x4B61664E

#: Page size of a new log file (an existing file keeps its own). A batch of sends over many
#: keys dirties one B-tree leaf per key, each written whole to the WAL and synced: at 1 KiB
#: rather than SQLite's 4 KiB those writes, and the sync that waits for them, are 4x smaller.
PAGE_SIZE = 1024

#: How long a statement waits for a lock held by another connection (the sqlite3 shell
#: during a checkpoint, or a second node on the same file) before failing with BusyError.
#: Shorter than Maelstrom's 5 s RPC timeout, so the client hears a definite error instead.
BUSY_TIMEOUT_MS = 2_000

#: In a database path, stands for the node's id, known from init on.
NODE_ID_PLACEHOLDER = "{node_id}"


class Durability(enum.Enum):
    """What an acknowledgement survives.

    FULL syncs the WAL before any reply to a batch leaves the node, but not inside COMMIT:
    the connection runs with `synchronous=NORMAL`, and the WAL syncer makes the committed
    frames durable (what `synchronous=FULL` would do inside COMMIT), on the serve loop's
    thread or, while more input waits, on a thread of its own.
    """

    FULL = "full"  # the WAL synced before replies: an ack survives a power cut or OS crash
    NORMAL = "normal"  # fsync at checkpoints only: an ack survives a process kill, not a power cut
    OFF = "off"  # never fsync (for measuring what durability costs): a power cut may corrupt the file


class UnusableDatabase(Exception):
    """The file at the database path is not one this node may open; it was left untouched."""


def connect(path: str, durability: Durability, vfs: str | None = None) -> tuple[apsw.Connection, int]:
    """A configured connection to the log at `path` (created if absent), its schema brought up
    to date; and the schema's version. A file that is not a kafka-node log is refused."""
    apsw.config(apsw.SQLITE_CONFIG_LOG, _log_sqlite)
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
    return conn, version


def connect_checkpointer(path: str, durability: Durability, vfs: str | None) -> apsw.Connection:
    """The second connection, on which checkpoints copy the WAL back into the file."""
    conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READWRITE, vfs=vfs)
    apsw.bestpractice.connection_busy_timeout(conn, BUSY_TIMEOUT_MS)
    conn.pragma("synchronous", synchronous_for(durability))
    return conn


def synchronous_for(durability: Durability) -> str:
    """SQLite's `synchronous` for a durability: FULL's syncs are made by the WAL syncer."""
    return "NORMAL" if durability is Durability.FULL else durability.name


def _log_sqlite(code: int, message: str) -> None:
    """SQLite's own log (https://sqlite.org/errlog.html), forwarded without statement text.

    A failed statement reaches the code as an exception and is reported there; SQLite's
    record of it ("statement aborts at ...") would repeat it with the statement's SQL, so
    that part is cut. WAL recovery after a kill is a notice, the rest warnings.
    """
    text = message.split("; [", 1)[0] if message.startswith("statement aborts") else message
    level = logging.INFO if code & 0xFF == apsw.SQLITE_NOTICE else logging.WARNING
    logger.log(level, "SQLite (%s): %s", apsw.ext.result_string(code), text)


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
    conn.pragma("page_size", PAGE_SIZE)  # takes effect on a new file only, before WAL and schema
    apsw.bestpractice.connection_wal(conn)
    apsw.bestpractice.connection_enable_foreign_keys(conn)
    apsw.bestpractice.connection_dqs(conn)
    apsw.bestpractice.connection_recursive_triggers(conn)
    apsw.bestpractice.connection_optimize(conn)
    conn.pragma("synchronous", synchronous_for(durability))
    conn.transaction_mode = "IMMEDIATE"


def database_path_for_node(template: str, node_id: str) -> str:
    """`template` with the node's id in place of NODE_ID_PLACEHOLDER; an id that cannot be
    one file name (empty, `.`, `..`, or holding a path separator or NUL) is refused."""
    if node_id in ("", ".", "..") or any(c in node_id for c in ("/", "\0", os.sep)):
        raise UnusableDatabase(f"the node id {node_id!r} cannot be part of a file name ({template})")
    return template.replace(NODE_ID_PLACEHOLDER, node_id)


def fresh_database_path() -> str:
    """A path in a new temporary directory, for a run that did not name a database."""
    return os.path.join(tempfile.mkdtemp(prefix="kafka-node-"), "log.db")
