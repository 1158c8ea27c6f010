"""The WAL's two threads: the syncer, which makes committed frames durable (on the caller's
thread, or its own), and the checkpointer, which copies the WAL back into the database file."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import apsw

logger = logging.getLogger("kafka_node.storage")

#: WAL growth, in pages, that wakes the checkpointer: once per this many pages, not after
#: every commit (SQLite's own automatic checkpoint runs inside whichever COMMIT crosses its
#: mark, and again in every COMMIT after it until the WAL starts over). Each checkpoint syncs
#: the WAL and the database file, on the disk that acknowledgements wait for; 4,096 pages of
#: 1 KiB is one checkpoint per 4 MiB of WAL.
CHECKPOINT_PAGES = 4096

#: WAL size, in pages, past which the writer waits, between two batches, for the
#: checkpointer to copy the whole WAL, so that the next COMMIT starts it again from its
#: beginning. Under nonstop commits a checkpoint running beside the writer never catches the
#: WAL's end, and SQLite restarts only a completely checkpointed WAL. So the WAL file holds
#: at most this many pages plus those of the one batch that crossed the mark, and from its
#: second pass on its frames overwrite the file's old ones, which syncs faster than growing it.
WAL_LIMIT_PAGES = 2 * CHECKPOINT_PAGES


class Checkpointer:
    """The one checkpointer: copies the WAL back into the database file on a connection and
    thread of its own, so that no request waits for a checkpoint's writes and syncs; it
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

    def __init__(self, conn: apsw.Connection, halted: Callable[[], bool]) -> None:
        self._conn = conn
        self._halted = halted  # once the file is not trusted, nothing more is copied into it
        self._due = threading.Event()
        self._caught_up = threading.Event()
        self._lock = threading.Lock()
        self._round = 0  # the catch-up being waited for (0: none); each has a number of its own
        self._rounds = 0
        self._stopping = False
        self.catch_up_timeout_s = self.CATCH_UP_TIMEOUT_S
        self.checkpoints = 0  # checkpoints that ran, complete or not (failed ones not counted)
        self.wal_pages = 0
        self._next_at = CHECKPOINT_PAGES  # WAL size that wakes the checkpointer next
        self._limit = WAL_LIMIT_PAGES  # WAL size past which the writer waits for a catch-up
        self._thread = threading.Thread(target=self._run, name="checkpointer", daemon=True)
        self._thread.start()

    def after_commit(self, _conn: apsw.Connection, _database: str, wal_pages: int) -> int:
        """SQLite's WAL hook, called in the committing thread: wakes the checkpointer each
        time the WAL has grown by CHECKPOINT_PAGES since it last did."""
        if wal_pages < self.wal_pages:  # the WAL started again from its beginning
            self._next_at = CHECKPOINT_PAGES
            self._limit = WAL_LIMIT_PAGES
        self.wal_pages = wal_pages
        if wal_pages >= self._next_at:
            self._next_at = wal_pages + CHECKPOINT_PAGES
            self._due.set()
        return apsw.SQLITE_OK

    @property
    def over_limit(self) -> bool:
        return self.wal_pages >= self._limit

    def catch_up(self) -> None:
        """Wait until a checkpoint has copied the whole WAL; the caller holds no transaction,
        so the next one starts the WAL again from its beginning. If none completes in time
        (a reader keeps an old snapshot open, say), the writer carries on and asks again
        only once the WAL has grown by WAL_LIMIT_PAGES more."""
        with self._lock:
            self._rounds += 1
            self._round = self._rounds
            self._caught_up.clear()
        self._due.set()
        if not self._caught_up.wait(self.catch_up_timeout_s):
            with self._lock:
                self._round = 0
                self._limit = self.wal_pages + WAL_LIMIT_PAGES
            logger.warning("the WAL has %d pages and no checkpoint completed within %.0f s",
                        self.wal_pages, self.catch_up_timeout_s)

    def _run(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            if self._stopping:
                return
            if self._halted():
                continue
            wanted = self._round
            try:
                wal_frames, copied = self._conn.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_PASSIVE)
                self.checkpoints += 1
            except apsw.Error as error:
                logger.warning("checkpoint failed (it will be retried): %s", error)
                wal_frames, copied = -1, 0
            if not wanted:
                continue
            with self._lock:
                if wanted != self._round:  # that catch-up gave up meanwhile, or another began
                    continue
                if copied == wal_frames or wal_frames == -1:  # complete (or failing: do not hold the writer)
                    self._round = 0
                    self.wal_pages = 0
                    self._next_at = CHECKPOINT_PAGES
                    self._limit = WAL_LIMIT_PAGES
                    self._caught_up.set()
                else:  # it began while a batch was committing: the frames since then are still to copy
                    self._due.set()

    def stop(self) -> None:
        self._stopping = True
        self._due.set()
        self._thread.join()
        self._conn.close()


class WalSyncer:
    """Makes committed WAL frames durable: an fsync of the WAL through the connection's VFS
    (the one SQLite itself would make at COMMIT with synchronous=FULL), covering every commit
    made before it starts, on the calling thread (`sync_here`) or on its own (`sync_soon`).

    Commits are numbered by the caller; `durable` is the highest number known to be on disk.
    After each sync, on whichever thread made it, `listener` (if set) is called, so that what
    waited for it can go at once. A failed sync is kept in `failure`, and no later one is tried.
    https://sqlite.org/pragma.html#pragma_synchronous
    """

    def __init__(self, wal_path: str, vfs: str | None) -> None:
        self._wal_path, self._vfs = wal_path, vfs
        self._wal: apsw.VFSFile | None = None  # opened at the first sync, once the WAL exists
        # Two conditions on one lock: the syncer's thread waits for work, `wait` for a sync.
        # A sync made on the caller's thread then wakes nobody who has nothing to do.
        self._lock = threading.Lock()
        self._asked = threading.Condition(self._lock)
        self._synced = threading.Condition(self._lock)
        self._waiters = 0
        self._io = threading.Lock()  # one fsync at a time, from either thread
        self._wanted = 0
        self.durable = 0
        self.failure: BaseException | None = None
        self.listener: Callable[[], None] | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="wal-syncer", daemon=True)
        self._thread.start()

    def sync_soon(self, commit: int) -> None:
        """Make every commit up to `commit` durable on the syncer's thread; returns at once."""
        with self._lock:
            if commit > self._wanted:
                self._wanted = commit
                self._asked.notify()

    def wait(self, commit: int) -> None:
        """Return once `commit` is durable; raise the sync's error if a sync failed."""
        self.sync_soon(commit)
        with self._lock:
            self._waiters += 1
            self._synced.wait_for(lambda: self.durable >= commit or self.failure is not None)
            self._waiters -= 1
        if self.failure is not None:
            raise self.failure

    def sync_here(self, commit: int) -> None:
        """Make every commit up to `commit` durable on the calling thread, then tell the
        listener: when nothing else is waiting to be done, this spares the wake-up of the
        syncer's thread."""
        self._sync(commit)
        self._tell()

    def _tell(self) -> None:
        """Tell the listener a sync ended; its failure is logged, never the end of this thread."""
        listener = self.listener
        if listener is None:
            return
        try:
            listener()
        except Exception:
            logger.exception("unexpected failure of what waited for a sync of the WAL")

    def _run(self) -> None:
        while True:
            with self._lock:
                self._asked.wait_for(lambda: self._stopping or (self._wanted > self.durable and not self.failure))
                if self._stopping:
                    return
                target = self._wanted
            self._sync(target)
            self._tell()

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
                logger.error("fsync of the WAL failed: %s", error)
                failure: BaseException | None = error
            else:
                failure = None
            with self._lock:
                if failure is None:
                    self.durable = max(self.durable, target)
                else:
                    self.failure = failure
                if self._waiters:
                    self._synced.notify_all()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._asked.notify()
        self._thread.join()
        if self._wal is not None:
            self._wal.xClose()
