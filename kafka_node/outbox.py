"""The outbox: replies held until the commit each depends on is durable, then written in the order
they were held, every release in one write, by whichever thread is there: the serve loop's, or the
WAL syncer's, which tells the outbox after each sync of the log it listens to."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import NamedTuple

from kafka_node import errors, protocol, wire
from kafka_node.storage import Storage

logger = logging.getLogger(__name__)


class Held(NamedTuple):
    """A reply (or a follower's answer to its leader), and the commit that must be durable
    before it may leave (0: none), in the order of `rpcs.Answer`, which holds the same before
    it is addressed. If a sync fails before that commit is durable, an indefinite error goes in
    a reply's place (a follower's answer is dropped: it promised what is not durable)."""

    reply: protocol.Outgoing | wire.Sent
    commit: int


class Outbox:
    """Replies waiting for durability, and the one writer of the node's stdout.

    It listens to the log's syncs (`listen`): after each, on the thread that made it, it
    writes what became durable. `release` does the same from the serve loop. A lock keeps the
    two apart, and what is durable is read inside it, so a sync that ends while replies are
    being held releases them. A write error (the reader went away) is kept in `broken`; it, and
    a failed sync, call `wake`, so that the serve loop stops."""

    def __init__(self, fd: int, wake: Callable[[], None]) -> None:
        self._fd = fd
        self._wake = wake
        self._lock = threading.Lock()
        self._waiting: list[Held] = []
        self._storage: Storage | None = None
        self._sync_failure_told = False
        self.broken: OSError | None = None
        #: The other nodes of the cluster: what one write has for each goes in one bundle.
        self.peers: frozenset[str] = frozenset()

    def listen(self, storage: Storage) -> None:
        """From now on, learn what is durable from `storage`, and release replies as its
        syncs make them durable."""
        with self._lock:
            self._storage = storage
        storage.on_sync(self.release)

    def stop_listening(self) -> None:
        """Hear no more syncs (serving ends); what is durable is still read from the storage,
        so a reply held after this still leaves once its commit is durable."""
        if self._storage is not None:
            self._storage.on_sync(None)

    def hold(self, held: Sequence[Held], send: Sequence[protocol.Outbound] = ()) -> None:
        """Queue replies, and write at once those whose commit is durable already, after
        `send`, messages that wait for nothing, in the same write."""
        with self._lock:
            self._waiting += held
            self._write_ready(send)

    def release(self) -> None:
        """Write every waiting reply whose commit is durable; after a failed sync, an
        indefinite error for each of the others, since whether they reached the disk is unknown."""
        with self._lock:
            self._write_ready()
            failure = self._storage.sync_failure if self._storage is not None else None
            if failure is None or self._sync_failure_told:
                return
            self._sync_failure_told = True
        logger.error("a sync of the WAL failed (%s): the outcome of the last batches is unknown", failure)
        self._wake()

    def send(self, messages: Sequence[protocol.Outbound]) -> None:
        """Write messages that wait for nothing (requests sent on to other nodes) at once."""
        with self._lock:
            self._write(protocol.encode(messages, self.peers))

    def _write_ready(self, send: Sequence[protocol.Outbound] = ()) -> None:
        waiting = self._waiting
        if not waiting:
            if send:
                self._write(protocol.encode(send, self.peers))
            return
        storage = self._storage
        # the failure first: after one, the durable count is final
        failure, durable = (None, 0) if storage is None else (storage.sync_failure, storage.durable)
        out: list[protocol.Outbound] = [*send]
        kept: list[Held] = []
        for entry in waiting:
            if entry.commit <= durable:
                out.append(entry.reply)
            elif failure is not None:
                if isinstance(entry.reply, protocol.Outgoing):
                    out.append(errors.lost_in_sync(entry.reply))
            else:
                kept.append(entry)
        self._waiting = kept
        if out:
            self._write(protocol.encode(out, self.peers))

    def _write(self, data: bytes) -> None:
        if self.broken is not None:
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as error:  # the reader is gone: the serve loop reports it
            self.broken = error
            self._waiting = []
            self._wake()
