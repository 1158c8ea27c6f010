"""The outbox: replies held until the commit each depends on is durable, then written in the order
they were held, every release in one write, by whichever thread is there: the serve loop's or the
WAL syncer's."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import NamedTuple

from kafka_node import protocol

#: Where the outbox learns what is durable: the error of a failed sync (None if none failed)
#: and how many commits are durable, read in that order (after a failure the count is final).
Durability = Callable[[], tuple[BaseException | None, int]]


def _nothing_to_wait_for() -> tuple[BaseException | None, int]:
    return None, 0


class Held(NamedTuple):
    """A reply, the commit that must be durable before it may leave (0: none), and what is
    sent instead if a sync fails before that commit is durable."""

    commit: int
    reply: protocol.Outgoing
    if_lost: protocol.Outgoing | None = None


class Outbox:
    """Replies waiting for durability, and the one writer of the node's stdout.

    `release` is called by the serve loop after each batch, and by the WAL syncer's thread
    after each sync; a lock keeps the two apart, and what is durable is read inside it, so a
    sync that ends while replies are being held releases them. A write error (the reader went
    away) is kept in `broken` and `on_broken` is called, so that the serve loop stops."""

    def __init__(self, fd: int, on_broken: Callable[[], None] = lambda: None) -> None:
        self._fd = fd
        self._on_broken = on_broken
        self._lock = threading.Lock()
        self._waiting: list[Held] = []
        self._durability: Durability = _nothing_to_wait_for
        self.broken: OSError | None = None

    def hears(self, durability: Durability) -> None:
        """From now on, learn what is durable from `durability` (once the log is open)."""
        with self._lock:
            self._durability = durability

    def hold(self, held: Sequence[Held]) -> None:
        """Queue replies, and write at once those whose commit is durable already."""
        with self._lock:
            self._waiting += held
            self._write_ready()

    def release(self) -> None:
        """Write every waiting reply whose commit is durable; after a failed sync, the others'
        `if_lost` instead, since whether they reached the disk is unknown."""
        with self._lock:
            self._write_ready()

    def send(self, messages: Sequence[protocol.Outgoing | protocol.Forwarded]) -> None:
        """Write messages that wait for nothing (requests sent on to other nodes) at once."""
        with self._lock:
            self._write(protocol.encode(messages))

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _write_ready(self) -> None:
        waiting = self._waiting
        if not waiting:
            return
        failure, durable = self._durability()
        out: list[protocol.Outgoing] = []
        kept: list[Held] = []
        for entry in waiting:
            if entry.commit <= durable:
                out.append(entry.reply)
            elif failure is not None:
                if entry.if_lost is not None:
                    out.append(entry.if_lost)
            else:
                kept.append(entry)
        self._waiting = kept
        if out:
            self._write(protocol.encode(out))

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
            self._on_broken()
