"""The stdin loop: reads whatever stdin has, cuts it into lines, hands each batch to the node,
gets its commits made durable and its replies released through the outbox; signals and deadlines."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import threading
import time
from types import FrameType

from kafka_node import framing
from kafka_node.node import Node
from kafka_node.outbox import Outbox
from kafka_node.storage import Storage, StorageError

logger = logging.getLogger(__name__)

#: Bytes asked of stdin per read: everything a busy client has queued arrives in one batch.
#: They are read into one buffer kept for the loop's life: a fresh 1 MiB for every read
#: would be mapped and unmapped by the allocator each time (three system calls per request).
READ_SIZE = 1 << 20

#: The longest wait for input that select accepts here (an infinite --forward-timeout is allowed).
_LONGEST_WAIT = 86_400.0

#: Seconds more a part sent on may take while input is waiting to be read: its reply may be there.
EXPIRY_GRACE = 0.5

EXIT_OK = 0
EXIT_FAILED = 1  # a failed COMMIT or sync: restart to recover from what is on disk
EXIT_REFUSED = 2  # init could not open the log it names


class _Interrupted(Exception):
    """A stop signal arrived while the loop was waiting for input."""


class ServeLoop:
    """Serves one node on a pair of file descriptors until end of input or a stop signal.

    Each batch is applied and committed at once; its replies wait in the outbox until the WAL
    is synced past their commit. If more input is already waiting, the WAL syncer's thread
    makes that sync (and releases the replies the moment it returns) while this loop applies
    the next batch; if not, this thread syncs at once, sparing the thread's wake-up. A batch
    that wrote nothing syncs nothing, and its replies wait only for the commits whose data
    they read. In a cluster the loop also wakes when a part sent on reaches its deadline.
    """

    def __init__(self, node: Node, stdin_fd: int, stdout_fd: int) -> None:
        self.node = node
        self.stdin_fd = stdin_fd
        self._alarm = os.pipe()  # written to (by any thread) to wake the loop and stop it
        self._alarm_lock = threading.Lock()
        self._alarm_open = True
        self.outbox = Outbox(stdout_fd, wake=self._sound_alarm)
        self._read_buffer = bytearray(READ_SIZE)
        self._stopping = False
        self._waiting_for_input = False
        self._storage: Storage | None = None  # the log, once init has opened it

    def run(self) -> int:
        """Serve until EOF, a stop signal or a failure that ends serving; the exit status."""
        self._install_signal_handlers()
        lines = framing.LineSplitter(self.node.max_line_bytes)
        try:
            while not self._stopping:
                try:
                    chunk = self._read(self._until_next_deadline())
                except _Interrupted:
                    break
                if chunk is None:  # woken by a deadline
                    self._expire_forwards(check_input=False)
                    self._tick()
                    continue
                batch = lines.feed(chunk) if chunk else lines.end()
                if batch:
                    self._serve(batch)
                    if self.node.stopping or self.outbox.broken is not None:
                        break
                self._expire_forwards(check_input=True)  # after every read: a long line may still stream in
                self._tick()
                if not chunk:
                    break
        finally:
            self._finish()
        if self.outbox.broken is not None:
            raise BrokenPipeError(self.outbox.broken.errno, "stdout closed")
        if self.node.refused:
            return EXIT_REFUSED
        if self._storage is not None and self._storage.untrusted:
            logger.error("exiting after a failed COMMIT or sync; restart to recover from what is on disk")
            return EXIT_FAILED
        logger.info("stopping: %s", "signal" if self._stopping else "end of input")
        return EXIT_OK

    def _serve(self, lines: list[framing.Line | framing.Oversized]) -> None:
        """One batch: applied and committed by the node, its replies held until durable."""
        step = self.node.receive(lines, time.monotonic())
        if step.opened is not None:  # from now on, its syncs release the outbox
            self._storage = step.opened
            self.outbox.listen(step.opened)
        self.outbox.peers = self.node.peers
        self.outbox.hold(step.held, send=step.forwarded)  # one write: one message per other node
        storage = self._storage
        if storage is None or storage.untrusted:  # after a failed COMMIT or sync: no sync, no checkpoint
            return
        if storage.has_unsynced_commits:
            if self._input_waiting():
                storage.sync_soon()  # on the syncer's thread, while the next batch is applied
            else:
                storage.sync_here()  # nothing else to do: spare the thread's wake-up
        if self.outbox.broken is None and not storage.untrusted:
            storage.bound_wal()

    def _until_next_deadline(self) -> float | None:
        """Seconds until a part sent on times out, if any is in flight."""
        deadline = self.node.next_deadline()
        if deadline is None:
            return None
        return min(max(0.0, deadline - time.monotonic()), _LONGEST_WAIT)

    def _expire_forwards(self, check_input: bool) -> None:
        """Answer the requests whose parts sent on were not answered in time. After a slow
        batch, with input waiting, a part gets EXPIRY_GRACE more, so that a reply that came in
        time but is not read yet is not given up on. Before the first deadline, this looks at
        nothing else."""
        deadline = self.node.next_deadline()
        if deadline is None:
            return
        now = time.monotonic()
        if deadline > now:
            return
        if check_input and self._input_waiting():
            now -= EXPIRY_GRACE
        if held := self.node.expire(now):
            self.outbox.hold(held)

    def _tick(self) -> None:
        """Replication's timers, when due: messages to send, replies the in-sync set released."""
        deadline = self.node.next_deadline()
        if deadline is None or deadline > time.monotonic():
            return
        step = self.node.tick(time.monotonic(), idle=not self._input_waiting())
        if step.forwarded or step.held:
            self.outbox.hold(step.held, send=step.forwarded)
        storage = self._storage  # requests tried again at the tick may have written
        if storage is not None and not storage.untrusted and storage.has_unsynced_commits:
            storage.sync_here()

    def _finish(self) -> None:
        """Write every reply still held once its commit is durable (or failed); answer the
        requests still waiting for other nodes with an error, since no reply can come now."""
        storage = self._storage
        if storage is not None:
            with contextlib.suppress(StorageError):
                storage.sync()
            self.outbox.release()
            self.outbox.stop_listening()
        if held := self.node.abandon_forwarded():
            self.outbox.hold(held)
        with self._alarm_lock:  # the syncer's thread may still be sounding it
            os.close(self._alarm[0])
            os.close(self._alarm[1])
            self._alarm_open = False

    def _sound_alarm(self) -> None:
        with self._alarm_lock:
            if self._alarm_open:
                with contextlib.suppress(OSError):
                    os.write(self._alarm[1], b"!")

    def _input_waiting(self) -> bool:
        return bool(select.select([self.stdin_fd], [], [], 0)[0])

    def _read(self, timeout: float | None) -> bytes | None:
        """The next chunk of input; b"" at its end, or once the alarm means stopping; None if
        nothing came within `timeout` seconds."""
        self._waiting_for_input = True
        try:
            if self._stopping:
                raise _Interrupted
            ready = select.select([self.stdin_fd, self._alarm[0]], [], [], timeout)[0]
            if not ready:
                return None
            if self._alarm[0] in ready:
                return b""
            read = os.readv(self.stdin_fd, [self._read_buffer])
            return bytes(memoryview(self._read_buffer)[:read])
        finally:
            self._waiting_for_input = False

    def _install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT: finish the batch in hand, then exit 0."""

        def stop(signum: int, _frame: FrameType | None) -> None:
            self._stopping = True
            if self._waiting_for_input:
                raise _Interrupted

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)


def serve(node: Node, stdin_fd: int = 0, stdout_fd: int = 1) -> int:
    """Serve `node` on stdin and stdout; the process's exit status."""
    return ServeLoop(node, stdin_fd, stdout_fd).run()
