"""One open log file with its threads (`Storage`), and the one owner that opens it, at start-up
or at init, and closes it when serving ends (`LogFile`)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from types import TracebackType

import apsw

from kafka_node.storage import opening
from kafka_node.storage.failures import cache_untrustworthy_after
from kafka_node.storage.log import Log
from kafka_node.storage.opening import NODE_ID_PLACEHOLDER, Durability
from kafka_node.storage.replica import ReplicaLog
from kafka_node.storage.wal import Checkpointer, WalSyncer

logger = logging.getLogger("kafka_node.storage")


class Storage:
    """One open kafka-node log file: its statements (`log`), how many of its commits are
    durable, and its checkpoints."""

    def __init__(self, conn: apsw.Connection, path: str, schema_version: int, durability: Durability,
                 vfs: str | None = None) -> None:
        self.log = Log(conn)
        self.replica = ReplicaLog(conn)
        self.created = False  # whether opening created the file (a node that lost its disk starts so)
        self.schema_version = schema_version
        self._untrusted = False
        self._checkpointer = Checkpointer(opening.connect_checkpointer(path, durability, vfs), lambda: self.untrusted)
        conn.set_wal_hook(self._checkpointer.after_commit)
        self._syncer = WalSyncer(path + "-wal", vfs) if durability is Durability.FULL else None

    @classmethod
    def open(cls, path: str, durability: Durability = Durability.FULL, vfs: str | None = None) -> Storage:
        """Open (creating if absent) the log at `path` and bring its schema up to date; what
        the migrations committed is durable before anything is served.

        `vfs` names a registered SQLite VFS to use instead of the default one (the fault
        tests wrap the real VFS to make writes and fsyncs fail)."""
        existed = os.path.exists(path)
        conn, version = opening.connect(path, durability, vfs)
        storage = cls(conn, path, version, durability, vfs)
        storage.created = not existed
        storage.log.commits = 1  # what the migrations (if any) committed
        try:
            storage.sync()
        except BaseException:
            storage._untrusted = True
            storage.close()
            raise
        return storage

    @property
    def conn(self) -> apsw.Connection:
        return self.log.conn

    def bound_wal(self) -> None:
        """Between two batches: if the WAL has passed its limit, wait for a checkpoint to copy
        all of it, so that it starts again from its beginning (see `Checkpointer`)."""
        if self._checkpointer.over_limit:
            self._checkpointer.catch_up()

    @property
    def checkpointer(self) -> Checkpointer:
        """The file's one checkpointer: how many checkpoints it ran, and how long the writer
        waits for a catch-up."""
        return self._checkpointer

    # --- durability: what has reached the disk ------------------------------------------

    @property
    def durable(self) -> int:
        """How many of the commits so far are known to be on disk (all, without FULL)."""
        return self._syncer.durable if self._syncer else self.log.commits

    @property
    def has_unsynced_commits(self) -> bool:
        """Whether commits were made that are not yet known to be durable."""
        return self.log.commits > self.durable

    @property
    def syncs_after_commit(self) -> bool:
        """Whether the WAL syncer makes each COMMIT durable (durability FULL)."""
        return self._syncer is not None

    def on_sync(self, listener: Callable[[], None] | None) -> None:
        """Call `listener` after each sync of the WAL (good or failed), on the thread that made
        it, until replaced; never called without FULL, where every COMMIT is as durable as it
        gets at once."""
        if self._syncer:
            self._syncer.listener = listener

    @property
    def sync_failure(self) -> BaseException | None:
        """The error of a sync that failed: what was committed since the last good one may be
        lost, and nothing more is made durable."""
        return self._syncer.failure if self._syncer else None

    def sync_soon(self) -> None:
        """Start making every commit so far durable, on the syncer's thread."""
        if self._syncer:
            self._syncer.sync_soon(self.log.commits)

    def sync_here(self) -> None:
        """Make every commit so far durable on this thread, then call the `on_sync` listener
        (a failure is kept in `sync_failure`, as on the syncer's thread)."""
        if self._syncer:
            self._syncer.sync_here(self.log.commits)

    def sync(self) -> None:
        """Return once every commit so far is durable; raise the sync's error if it failed."""
        if self._syncer:
            self._syncer.wait(self.log.commits)

    # --- trust, and the end ---------------------------------------------------------------

    def commit(self) -> int:
        """COMMIT the open transaction; the commit's number. A COMMIT that failed so that the
        connection's view may not be the disk's leaves the storage untrusted; the error is raised."""
        try:
            return self.log.commit()
        except apsw.Error as error:
            if cache_untrustworthy_after(error):
                self.distrust()
            raise

    def distrust(self) -> None:
        """After an I/O error at COMMIT the connection's view of the file may not be what is
        on disk: nothing more is applied, and closing writes nothing more."""
        self._untrusted = True

    @property
    def untrusted(self) -> bool:
        """Whether a COMMIT or a sync failed so that the file on disk may not be what the
        connection believes. A restart recovers from what is really on disk (as PostgreSQL
        does after a failed fsync); carrying on could hand out offsets that a half-written
        batch already used."""
        return self._untrusted or self.sync_failure is not None

    def close(self) -> None:
        """Close, leaving a checkpointed file and no WAL behind; or, once the file is
        untrusted, without writing anything more: no optimize, no checkpoint of the WAL, so
        that the next open recovers from the disk alone."""
        if self._syncer:
            self._syncer.stop()
        self._checkpointer.stop()
        with contextlib.suppress(apsw.Error):
            if self.untrusted:
                self.conn.config(apsw.SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1)
            else:
                self.conn.pragma("optimize")
        self.conn.close()


class LogFile:
    """Where the node's log lives, and the one owner of its `Storage`: opened at start-up, or
    at init when the path names the node's id, and closed once, when serving ends."""

    def __init__(self, path: str, durability: Durability = Durability.FULL, vfs: str | None = None,
                 fresh: bool = False) -> None:
        self.path = path
        self.durability = durability
        self.vfs = vfs
        self.fresh = fresh  # a temporary file, since none was named
        self.storage: Storage | None = None

    @property
    def named_at_init(self) -> bool:
        """Whether the file is named by the node's id, which init tells."""
        return NODE_ID_PLACEHOLDER in self.path

    def open(self, node_id: str | None = None) -> Storage:
        """The open log: opened now if it is not yet (with `node_id` in place of
        `{node_id}` in the path); UnusableDatabase if the file is not one to open."""
        if self.storage is None:
            path = self.path
            if self.named_at_init:
                if node_id is None:
                    raise ValueError(f"{self.path} is named by the node's id, which init tells")
                path = opening.database_path_for_node(self.path, node_id)
            self.storage = Storage.open(path, self.durability, self.vfs)
            logger.info("serving log %s (schema version %d, durability %s)%s", path, self.storage.schema_version,
                     self.durability.value, " (a fresh file: pass --db to keep the log across runs)" if self.fresh else "")
        return self.storage

    def close(self) -> None:
        if self.storage is not None:
            self.storage.close()
            self.storage = None

    def __enter__(self) -> LogFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

