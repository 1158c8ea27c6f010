"""The SQLite log: the apsw connection and its pragmas, every SQL statement the node runs,
and transactions. Knows keys, offsets and message JSON text; knows nothing of envelopes."""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import apsw
import apsw.bestpractice
import apsw.ext
import msgspec

from kafka_node import migrations

log = logging.getLogger(__name__)

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


#: WAL size, in pages, at which the checkpointer is woken to copy the WAL back into the
#: database file (SQLite's own automatic checkpoint uses the same size, but runs inside the
#: COMMIT of whichever request crosses it).
CHECKPOINT_PAGES = 1000

#: WAL size, in pages, past which the writer waits, between two batches, for the
#: checkpointer to copy the whole WAL, so that the next COMMIT starts it again from its
#: beginning. Under nonstop commits a checkpoint running beside the writer never catches the
#: WAL's end, and SQLite restarts only a completely checkpointed WAL. So the WAL file holds
#: at most this many pages plus those of the one batch that crossed the mark.
WAL_LIMIT_PAGES = 4 * CHECKPOINT_PAGES


class Durability(enum.Enum):
    """What an acknowledgement survives.

    FULL syncs the WAL before any reply to a batch leaves the node, but not inside COMMIT:
    the connection runs with `synchronous=NORMAL`, and `_WalSyncer` makes the committed frames
    durable on a thread of its own while the node goes on applying the next batch (what
    `synchronous=FULL` would do inside COMMIT, overlapped with the next batch's work).
    """

    FULL = "full"  # the WAL synced before replies: an ack survives a power cut or OS crash
    NORMAL = "normal"  # fsync at checkpoints only: an ack survives a process kill, not a power cut
    OFF = "off"  # never fsync (for measuring what durability costs): a power cut may corrupt the file


#: Any failure reported by SQLite.
StorageError = apsw.Error

#: Failures of the database as a whole rather than of one request's statement: the
#: transaction is given up, since every other request of the batch would meet them too.
_WHOLE_DATABASE_ERRORS = (
    apsw.BusyError, apsw.LockedError, apsw.FullError, apsw.IOError, apsw.ReadOnlyError,
    apsw.CantOpenError, apsw.CorruptError, apsw.NotADBError, apsw.NoMemError,
)


#: What each kind of SQLite failure means, in the node's words (SQLite's own follow them).
_FAILURES_IN_WORDS: tuple[tuple[type[apsw.Error], str], ...] = (
    (apsw.FullError, "the disk is full"),
    (apsw.BusyError, "the log is locked by another connection"),
    (apsw.LockedError, "the log is locked by another connection"),
    (apsw.IOError, "the disk failed to read or write"),
    (apsw.ReadOnlyError, "the log's file cannot be written"),
    (apsw.CantOpenError, "the log's file cannot be opened"),
    (apsw.CorruptError, "the log's file is damaged"),
    (apsw.NotADBError, "the log's file is not a database"),
    (apsw.NoMemError, "SQLite ran out of memory"),
    (apsw.TooBigError, "the reply would be too big for SQLite"),
)


def describe(error: BaseException) -> str:
    """A storage failure in the node's words, with SQLite's own after them."""
    words = next((words for kind, words in _FAILURES_IN_WORDS if isinstance(error, kind)), "SQLite failed")
    return f"{words} ({error})"


def is_whole_database_error(error: BaseException) -> bool:
    return isinstance(error, _WHOLE_DATABASE_ERRORS)


def cache_untrustworthy_after(error: BaseException) -> bool:
    """Whether, after this error at COMMIT, the connection's view may differ from the disk."""
    return isinstance(error, apsw.IOError)


def _log_sqlite(code: int, message: str) -> None:
    """SQLite's own log (https://sqlite.org/errlog.html), forwarded without statement text.

    A failed statement reaches the code as an exception and is reported there; SQLite's
    record of it ("statement aborts at ...") would repeat it with the statement's SQL, so
    that part is cut. WAL recovery after a kill is a notice, the rest warnings.
    """
    text = message.split("; [", 1)[0] if message.startswith("statement aborts") else message
    level = logging.INFO if code & 0xFF == apsw.SQLITE_NOTICE else logging.WARNING
    log.log(level, "SQLite (%s): %s", apsw.ext.result_string(code), text)


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
    conn.pragma("page_size", PAGE_SIZE)  # takes effect on a new file only, before WAL and schema
    apsw.bestpractice.connection_wal(conn)
    apsw.bestpractice.connection_enable_foreign_keys(conn)
    apsw.bestpractice.connection_dqs(conn)
    apsw.bestpractice.connection_recursive_triggers(conn)
    apsw.bestpractice.connection_optimize(conn)
    conn.pragma("synchronous", _synchronous(durability))
    conn.transaction_mode = "IMMEDIATE"


def _synchronous(durability: Durability) -> str:
    """SQLite's `synchronous` for a durability: FULL's syncs are made by `_WalSyncer`."""
    return "NORMAL" if durability is Durability.FULL else durability.name


class _Checkpointer:
    """The one checkpointer: copies the WAL back into the database file on a connection and
    thread of its own, so that no request waits for a checkpoint's writes and fsyncs; it
    replaces SQLite's automatic checkpoint.

    apsw releases the GIL while SQLite works, and a PASSIVE checkpoint never blocks the
    writer, so the node keeps committing while the file catches up. When the WAL has grown
    past WAL_LIMIT_PAGES anyway, the writer asks for a complete checkpoint and waits for it
    between two batches (`catch_up`); nothing else ever checkpoints while the node runs, so
    no two checkpoints contend for SQLite's checkpoint lock.
    https://sqlite.org/wal.html#application_initiated_checkpoints
    """

    #: How long the writer waits for a complete checkpoint before it carries on without one.
    CATCH_UP_TIMEOUT_S = 10.0

    def __init__(self, path: str, durability: Durability, vfs: str | None) -> None:
        self._conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READWRITE, vfs=vfs)
        apsw.bestpractice.connection_busy_timeout(self._conn, BUSY_TIMEOUT_MS)
        self._conn.pragma("synchronous", _synchronous(durability))
        self._due = threading.Event()
        self._caught_up = threading.Event()
        self._catch_up_wanted = False
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

    def catch_up(self) -> None:
        """Wait until a checkpoint has copied the whole WAL; the caller holds no transaction,
        so the next one starts the WAL again from its beginning."""
        self._caught_up.clear()
        self._catch_up_wanted = True
        self._due.set()
        if not self._caught_up.wait(self.CATCH_UP_TIMEOUT_S):
            log.warning("the WAL has %d pages and no checkpoint completed within %.0f s",
                        self.wal_pages, self.CATCH_UP_TIMEOUT_S)

    def _run(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            if self._stopping:
                return
            wanted = self._catch_up_wanted
            try:
                wal_frames, copied = self._conn.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_PASSIVE)
            except apsw.Error as error:
                log.warning("checkpoint failed (it will be retried): %s", error)
                wal_frames, copied = -1, 0
            if not wanted:
                continue
            if copied == wal_frames or wal_frames == -1:  # complete (or failing: do not hold the writer)
                self._catch_up_wanted = False
                self.wal_pages = 0
                self._caught_up.set()
            else:  # it began while a batch was committing: the frames since then are still to copy
                self._due.set()

    def stop(self) -> None:
        self._stopping = True
        self._due.set()
        self._thread.join()
        self._conn.close()


class _WalSyncer:
    """Makes committed WAL frames durable, on a thread of its own: an fsync of the WAL through
    the connection's VFS (the one SQLite itself would make at COMMIT with synchronous=FULL),
    asked for after a COMMIT and covering every commit made before it starts.

    Commits are numbered by the caller; `durable` is the highest number known to be on disk.
    After each sync the thread calls `listener` (if set) with the new `durable` count, so what
    waited for it can go at once. A failed sync is kept in `failure`, and no later one is tried.
    https://sqlite.org/pragma.html#pragma_synchronous
    """

    def __init__(self, wal_path: str, vfs: str | None) -> None:
        self._wal_path, self._vfs = wal_path, vfs
        self._wal: apsw.VFSFile | None = None  # opened at the first sync, once the WAL exists
        self._changed = threading.Condition()
        self._io = threading.Lock()  # one fsync at a time, from either thread
        self._wanted = 0
        self.durable = 0
        self.failure: BaseException | None = None
        self.listener: Callable[[], None] | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="wal-syncer", daemon=True)
        self._thread.start()

    def request(self, commit: int) -> None:
        """Make every commit up to `commit` durable, soon; returns at once."""
        with self._changed:
            if commit > self._wanted:
                self._wanted = commit
                self._changed.notify_all()

    def wait(self, commit: int) -> None:
        """Return once `commit` is durable; raise the sync's error if a sync failed."""
        self.request(commit)
        with self._changed:
            self._changed.wait_for(lambda: self.durable >= commit or self.failure is not None)
        if self.failure is not None:
            raise self.failure

    def sync_here(self, commit: int) -> None:
        """Make every commit up to `commit` durable on the calling thread, then tell the
        listener: when nothing else is waiting to be done, this spares the wake-up of the
        syncer's thread."""
        self._sync(commit)
        if self.listener is not None:
            self.listener()

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._stopping or (self._wanted > self.durable and not self.failure))
                if self._stopping:
                    return
                target = self._wanted
            self._sync(target)
            if self.listener is not None:
                self.listener()

    def _sync(self, target: int) -> None:
        """fsync the WAL, covering commits up to `target` (made before this call), unless a
        sync that started later already did, or one failed."""
        with self._io:
            if self.durable >= target or self.failure is not None:
                return
            try:
                if self._wal is None:
                    self._wal = apsw.VFSFile(self._vfs or "", self._wal_path,
                                             [apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_WAL, 0])
                self._wal.xSync(apsw.SQLITE_SYNC_NORMAL)
            except apsw.Error as error:
                log.error("fsync of the WAL failed: %s", error)
                failure: BaseException | None = error
            else:
                failure = None
            with self._changed:
                if failure is None:
                    self.durable = max(self.durable, target)
                else:
                    self.failure = failure
                self._changed.notify_all()

    def stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join()
        if self._wal is not None:
            self._wal.xClose()


class Storage:
    """One open kafka-node log file."""

    def __init__(self, conn: apsw.Connection, path: str, schema_version: int, durability: Durability,
                 vfs: str | None = None) -> None:
        self.conn = conn
        self.path = path
        self.schema_version = schema_version
        self.durability = durability
        self.commits = 0  # writing COMMITs so far; the WAL syncer makes them durable in this order
        self._writing = False
        self._checkpointer = _Checkpointer(path, durability, vfs)
        conn.set_wal_hook(self._checkpointer.after_commit)
        self._syncer = _WalSyncer(path + "-wal", vfs) if durability is Durability.FULL else None

    @classmethod
    def open(cls, path: str, durability: Durability = Durability.FULL, vfs: str | None = None) -> Storage:
        """Open (creating if absent) the log at `path` and bring its schema up to date.

        `vfs` names a registered SQLite VFS to use instead of the default one (the fault
        tests wrap the real VFS to make writes and fsyncs fail)."""
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
        storage = cls(conn, path, version, durability, vfs)
        storage.commits = 1  # what the migrations (if any) committed: durable before serving
        try:
            storage.sync()
        except BaseException:
            storage.abandon()
            raise
        return storage

    def bound_wal(self) -> None:
        """Between two batches: if the WAL has passed WAL_LIMIT_PAGES, wait for a checkpoint
        to copy all of it, so it starts again from its beginning (see `_Checkpointer`)."""
        if self._checkpointer.wal_pages >= WAL_LIMIT_PAGES:
            self._checkpointer.catch_up()

    # --- durability: what has reached the disk ------------------------------------------

    @property
    def durable(self) -> int:
        """How many of the COMMITs so far are known to be on disk (all, without FULL)."""
        return self._syncer.durable if self._syncer else self.commits

    @property
    def syncs_after_commit(self) -> bool:
        """Whether the WAL syncer makes each COMMIT durable (durability FULL)."""
        return self._syncer is not None

    def on_sync(self, listener: Callable[[], None] | None) -> None:
        """Call `listener` on the syncer's thread after each sync of the WAL (good or failed),
        until replaced; never called without FULL, where every COMMIT is as durable as it gets
        at once."""
        if self._syncer:
            self._syncer.listener = listener

    @property
    def sync_failure(self) -> BaseException | None:
        """The error of a sync that failed: what was committed since the last good one may be
        lost, and nothing more is made durable."""
        return self._syncer.failure if self._syncer else None

    def sync_soon(self) -> None:
        """Start making every COMMIT so far durable, on the syncer's thread."""
        if self._syncer:
            self._syncer.request(self.commits)

    def sync_here(self) -> None:
        """Make every COMMIT so far durable on this thread, then call the `on_sync` listener
        (a failure is kept in `sync_failure`, as on the syncer's thread)."""
        if self._syncer:
            self._syncer.sync_here(self.commits)

    def sync(self) -> None:
        """Return once every COMMIT so far is durable; raise the sync's error if it failed."""
        if self._syncer:
            self._syncer.wait(self.commits)

    def _stop_syncer(self) -> None:
        if self._syncer:
            self._syncer.stop()

    def close(self) -> None:
        """Close, leaving a checkpointed file and no WAL behind."""
        self._stop_syncer()
        self._checkpointer.stop()
        with contextlib.suppress(apsw.Error):
            self.conn.pragma("optimize")
        self.conn.close()

    def abandon(self) -> None:
        """Close without writing anything more: no optimize, no checkpoint of the WAL.

        For after an I/O error at COMMIT, when what the connection believes may not be what
        is on disk; the next open recovers from the disk alone.
        """
        self._stop_syncer()
        self._checkpointer.stop()
        with contextlib.suppress(apsw.Error):
            self.conn.config(apsw.SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1)
        self.conn.close()

    def begin(self, write: bool = True) -> None:
        """BEGIN a transaction. A writing one takes the write lock at once (IMMEDIATE), so a
        lock held elsewhere fails before any work is done; a reading one (DEFERRED) never
        waits for it."""
        self.conn.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")
        self._writing = write

    def commit(self) -> None:
        """COMMIT; if that fails, roll back what SQLite has not already rolled back itself,
        and raise the COMMIT's error."""
        try:
            self.conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise
        self.commits += self._writing

    def rollback(self) -> None:
        """Roll back the open transaction, if SQLite has not already done so after an error
        (a ROLLBACK without a transaction would only log an error of its own)."""
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

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

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[None]:
        """BEGIN ... COMMIT around a block, rolled back if the block raises."""
        self.begin(write)
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        self.commit()

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

    def read_from(self, offsets: Mapping[str, int], limit_per_key: int, max_bytes: int) -> bytes:
        """For each key, up to `limit_per_key` messages from its asked offset on, ascending,
        as the JSON text of a poll reply's `msgs`: {"key": [[offset, msg], ...], ...}.

        The messages' JSON text adds up to at most `max_bytes`, counted over the keys in the
        order asked: each key gets the prefix of its messages that fits, and the first
        message is returned whatever its size, so a reader always progresses. Keys with
        nothing are left out.

        Offsets are dense, so a key's answer is one range of the primary key. The budget is
        checked on the messages' sizes alone (SQLite reads them from the record headers);
        only the messages kept are then read, and SQLite assembles the reply, so a poll
        naming thousands of keys creates no Python object per message.
        """
        asked = msgspec.json.encode(offsets).decode()
        total = self.conn.execute(
            """
            SELECT sum(octet_length(messages.msg))
            FROM json_each(:offsets) AS wanted
            JOIN messages ON messages.key = wanted.key
                         AND messages.log_offset >= wanted.value
                         AND messages.log_offset < wanted.value + :limit
            """,
            {"offsets": asked, "limit": limit_per_key},
        ).get
        if total is None:
            return b"{}"
        if total <= max_bytes:
            ranges = {key: (first, limit_per_key) for key, first in offsets.items()}
        else:
            ranges = self._ranges_within(asked, limit_per_key, max_bytes)
        return self._messages_in(ranges)

    def _ranges_within(self, asked: str, limit_per_key: int, max_bytes: int) -> dict[str, tuple[int, int]]:
        """Each key's first offset and how many of its messages fit in `max_bytes`, in the
        order asked (only for a poll whose messages do not all fit: a window over sizes)."""
        rows = self.conn.execute(
            """
            SELECT key, first_offset, count(*)
            FROM (SELECT wanted.id AS position, wanted.key, wanted.value AS first_offset,
                         sum(octet_length(messages.msg)) OVER running AS bytes_so_far,
                         row_number() OVER running AS nth
                  FROM json_each(:offsets) AS wanted
                  JOIN messages ON messages.key = wanted.key
                               AND messages.log_offset >= wanted.value
                               AND messages.log_offset < wanted.value + :limit
                  WINDOW running AS (ORDER BY wanted.id, messages.log_offset ROWS UNBOUNDED PRECEDING))
            WHERE bytes_so_far <= :max_bytes OR nth = 1
            GROUP BY position
            ORDER BY position
            """,
            {"offsets": asked, "limit": limit_per_key, "max_bytes": max_bytes},
        )
        return {key: (first, count) for key, first, count in rows}

    def _messages_in(self, ranges: Mapping[str, tuple[int, int]]) -> bytes:
        """The reply's `msgs` for these ranges (key: first offset, count), in their order.

        One join, each message appended once to one string: each key's first message brings
        the key (`],"key":[`), so the text needs only its first two bytes dropped and its
        brackets closed. The join runs the ranges in order and each range in offset order
        (the primary key's), which is the order group_concat sees them in.
        """
        body = self.conn.execute(
            """
            WITH wanted AS MATERIALIZED (
              SELECT key, value ->> 0 AS first_offset, (value ->> 0) + (value ->> 1) AS end_offset,
                     '],' || json_quote(key) || ':[' AS head
              FROM json_each(:ranges)
            )
            SELECT CAST(group_concat(printf('%s[%d,%s]', iif(messages.log_offset = wanted.first_offset, wanted.head, ','),
                                            messages.log_offset, messages.msg), '') AS BLOB)
            FROM wanted
            CROSS JOIN messages ON messages.key = wanted.key
                               AND messages.log_offset >= wanted.first_offset
                               AND messages.log_offset < wanted.end_offset
            """,
            {"ranges": msgspec.json.encode(ranges).decode()},
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


#: In a database path, stands for the node's id, known from init on.
NODE_ID_PLACEHOLDER = "{node_id}"


def database_path_for_node(template: str, node_id: str) -> str:
    """`template` with the node's id in place of NODE_ID_PLACEHOLDER; an id that cannot be
    one file name (empty, `.`, `..`, or holding a path separator or NUL) is refused."""
    if node_id in ("", ".", "..") or any(c in node_id for c in ("/", "\0", os.sep)):
        raise UnusableDatabase(f"the node id {node_id!r} cannot be part of a file name ({template})")
    return template.replace(NODE_ID_PLACEHOLDER, node_id)


def fresh_database_path() -> str:
    """A path in a new temporary directory, for a run that did not name a database."""
    return os.path.join(tempfile.mkdtemp(prefix="kafka-node-"), "log.db")
