"""The node: reads JSON lines from stdin, dispatches each request to its handler, applies a
whole batch in one transaction (group commit), and writes the replies only after COMMIT."""

from __future__ import annotations

import errno
import itertools
import logging
import os
import signal
from collections.abc import Callable

from kafka_node import protocol
from kafka_node import storage as storage_lib
from kafka_node.protocol import ErrorCode
from kafka_node.storage import Storage

log = logging.getLogger(__name__)

#: Bytes asked of stdin per read: everything a busy client has queued arrives in one batch.
READ_SIZE = 1 << 20


Request = protocol.Envelope | protocol.Rejected


class _Interrupted(Exception):
    """A stop signal arrived while the node was waiting for input."""


class Node:
    """One kafka-node serving Maelstrom requests against one open log."""

    def __init__(self, storage: Storage, poll_max_per_key: int, max_line_bytes: int,
                 max_batch: int | None = None, poll_max_messages: int = 100_000) -> None:
        self.storage = storage
        self.poll_max_messages = poll_max_messages
        self.max_batch = max_batch
        self.poll_max_per_key = poll_max_per_key
        self.max_line_bytes = max_line_bytes
        self.node_id: str | None = None
        self._stopping = False
        self._waiting_for_input = False
        self._storage_untrusted = False
        # Sends are not here: consecutive sends are answered together by `send`.
        self._handlers: dict[type, Callable] = {
            protocol.Init: self.init,
            protocol.Poll: self.poll,
            protocol.CommitOffsets: self.commit_offsets,
            protocol.ListCommittedOffsets: self.list_committed_offsets,
        }

    # --- handlers, one per request type -----------------------------------------------

    def init(self, body: protocol.Init) -> protocol.InitOk:
        self.node_id = body.node_id
        log.info("initialised as %s (cluster %s)", body.node_id, ",".join(body.node_ids))
        return protocol.InitOk(in_reply_to=body.msg_id)

    def send(self, bodies: list[protocol.Send]) -> list[protocol.SendOk]:
        """A run of consecutive sends, appended together in their order."""
        offsets = self.storage.append_many([(body.key, protocol.message_text(body)) for body in bodies])
        return [protocol.SendOk(in_reply_to=body.msg_id, offset=offset) for body, offset in zip(bodies, offsets)]

    def poll(self, body: protocol.Poll) -> protocol.PollOk:
        offsets, per_key = body.offsets, self.poll_max_per_key
        if len(offsets) * per_key > self.poll_max_messages:
            # Bound the reply: fewer messages per key, and past the budget, keys left out
            # (a poll may return any prefix of a key's log, including none of it).
            per_key = max(1, self.poll_max_messages // len(offsets))
            offsets = dict(itertools.islice(offsets.items(), self.poll_max_messages))
        msgs = self.storage.read_from(offsets, per_key)
        return protocol.PollOk(in_reply_to=body.msg_id, msgs=protocol.json_text(msgs))

    def commit_offsets(self, body: protocol.CommitOffsets) -> protocol.CommitOffsetsOk:
        self.storage.commit_offsets(body.offsets)
        return protocol.CommitOffsetsOk(in_reply_to=body.msg_id)

    def list_committed_offsets(self, body: protocol.ListCommittedOffsets) -> protocol.ListCommittedOffsetsOk:
        offsets = self.storage.committed_offsets(body.keys)
        return protocol.ListCommittedOffsetsOk(in_reply_to=body.msg_id, offsets=offsets)

    # --- one batch ----------------------------------------------------------------------

    def answer_batch(self, lines: list[bytes | protocol.Rejected]) -> bytes:
        """Apply every request of a batch in one transaction; return the encoded replies.

        `lines` holds the batch's input lines, and a rejection in place of each line that
        was too long to keep."""
        requests = [
            line if isinstance(line, protocol.Rejected) else protocol.decode(line)
            for line in lines if isinstance(line, protocol.Rejected) or line.strip()
        ]
        size = self.max_batch or len(requests) or 1
        replies: list[protocol.Outgoing | None] = []
        for start in range(0, len(requests), size):
            chunk = requests[start:start + size]
            if self._storage_untrusted:  # a COMMIT of this batch failed: apply nothing more
                replies += [self._error_for(r, ErrorCode.TEMPORARILY_UNAVAILABLE, "not applied: the node is "
                                            "stopping after a failed COMMIT") if self._uses_storage(r)
                            else self._answer(r) for r in chunk]
            else:
                replies += self._answer_together(chunk, retry_alone=True)
        return self._encode(replies)

    def _answer_together(self, requests: list[Request], retry_alone: bool) -> list[protocol.Outgoing | None]:
        """Answer requests inside one transaction, committed before any reply is returned.

        If a statement fails because of one request, the transaction rolls back and each
        request is retried in a transaction of its own, so a bad request costs only its own
        reply; a failure of the database as a whole (lock held, disk full) is answered at
        once for the whole batch. If COMMIT itself fails, whether the batch reached the disk
        is unknown: every request that touched storage gets the indefinite error 13.
        """
        stored = [r for r in requests if self._uses_storage(r)]
        if not stored:
            return [self._answer(r) for r in requests]
        writes = any(isinstance(r.body, (protocol.Send, protocol.CommitOffsets)) for r in stored)
        replies: list[protocol.Outgoing | None] = []
        committing = False
        try:
            with self.storage.transaction(write=writes):
                replies = self._answer_in_order(requests)
                committing = True
            return replies
        except Exception as error:
            if committing:
                log.error("COMMIT failed (%s): the outcome of %d requests is unknown", error, len(stored))
                self._storage_untrusted = storage_lib.cache_untrustworthy_after(error)
                text = f"commit failed, outcome unknown: {error}"
                return [self._error_for(r, ErrorCode.CRASH, text) if self._uses_storage(r) else reply
                        for r, reply in zip(requests, replies)]
            if retry_alone and len(stored) > 1 and not storage_lib.is_whole_database_error(error):
                log.warning("batch of %d rolled back (%s); retrying its requests one by one", len(requests), error)
                return [self._answer_together([r], retry_alone=False)[0] for r in requests]
            if isinstance(error, storage_lib.StorageError):
                code, text = ErrorCode.TEMPORARILY_UNAVAILABLE, f"storage error, nothing applied: {error}"
            else:
                log.exception("unexpected failure; the transaction was rolled back")
                code, text = ErrorCode.CRASH, f"internal error: {error!r}"
            return [self._error_for(r, code, text) if self._uses_storage(r) else self._answer(r) for r in requests]

    def _answer_in_order(self, requests: list[Request]) -> list[protocol.Outgoing | None]:
        """Replies in request order; each run of consecutive sends is appended at once, so
        a poll later in the batch sees every send before it."""
        replies: list[protocol.Outgoing | None] = []
        run: list[protocol.Envelope] = []
        for request in requests:
            if self.node_id is not None and type(request) is protocol.Envelope and type(request.body) is protocol.Send:
                run.append(request)
                continue
            if run:
                replies += self._answer_sends(run)
                run = []
            replies.append(self._answer(request))
        if run:
            replies += self._answer_sends(run)
        return replies

    def _answer_sends(self, run: list[protocol.Envelope]) -> list[protocol.Outgoing]:
        acks = self.send([request.body for request in run])
        return [self._reply(request.src, request.dest, ack) for request, ack in zip(run, acks)]

    @property
    def storage_untrusted(self) -> bool:
        """After an I/O error at COMMIT the page cache may not match the disk: stop serving.

        A restart recovers from what is really on disk (as PostgreSQL does after a failed
        fsync); carrying on could hand out offsets that a half-written batch already used.
        """
        return self._storage_untrusted

    @staticmethod
    def _uses_storage(request: Request) -> bool:
        return isinstance(request, protocol.Envelope) and not isinstance(request.body, protocol.Init)

    def _answer(self, request: Request) -> protocol.Outgoing | None:
        """The reply to one request (None when there is nobody to reply to)."""
        if isinstance(request, protocol.Rejected):
            if request.src is None:
                log.warning("skipped a line that is not a request: %s", request.text)
                return None
            log.info("rejected a request from %s: %s", request.src, request.text)
            return self._reply(request.src, request.dest, protocol.Error(
                in_reply_to=request.msg_id, code=request.code, text=request.text))
        body = request.body
        if self.node_id is None and not isinstance(body, protocol.Init):
            return self._error_for(request, ErrorCode.TEMPORARILY_UNAVAILABLE, "node not initialised yet: send init first")
        return self._reply(request.src, request.dest, self._handlers[type(body)](body))

    def _error_for(self, request: protocol.Envelope, code: ErrorCode, text: str) -> protocol.Outgoing:
        return self._reply(request.src, request.dest, protocol.Error(in_reply_to=request.body.msg_id, code=code, text=text))

    def _reply(self, asker: str, addressed_to: str | None, body) -> protocol.Outgoing:
        return protocol.Outgoing(src=self.node_id or addressed_to or "", dest=asker, body=body)

    @staticmethod
    def _encode(replies: list[protocol.Outgoing | None]) -> bytes:
        return protocol.encode([r for r in replies if r is not None])

    # --- the stdin loop -----------------------------------------------------------------

    def serve(self, stdin_fd: int = 0, stdout_fd: int = 1) -> int:
        """Serve until EOF or a stop signal; return the process exit status."""
        self._install_signal_handlers()
        unfinished: list[bytes] = []  # pieces of a line whose newline has not arrived yet
        unfinished_size = 0
        discarding = False  # inside a line longer than max_line_bytes
        while not self._stopping:
            try:
                chunk = self._read(stdin_fd)
            except _Interrupted:
                break
            if not chunk:  # EOF: a last line without its newline still counts
                if unfinished and not discarding:
                    self._write(stdout_fd, self.answer_batch([b"".join(unfinished)]))
                break
            lines = chunk.split(b"\n")
            tail = lines.pop()
            if lines:
                if discarding:
                    lines.pop(0)
                    discarding = False
                elif unfinished:
                    lines[0] = b"".join(unfinished) + lines[0]
                unfinished, unfinished_size = [], 0
                # Only the first line (which may carry earlier pieces) can be longer than the
                # chunk; the others need no check unless the chunk itself is over the limit.
                if lines and (len(lines[0]) > self.max_line_bytes or len(chunk) > self.max_line_bytes):
                    lines = [self._within_limit(line) for line in lines]
            if tail and not discarding:
                unfinished.append(tail)
                unfinished_size += len(tail)
                if unfinished_size > self.max_line_bytes:
                    lines.append(self._oversized(unfinished))
                    unfinished, unfinished_size, discarding = [], 0, True
            if lines:
                self._write(stdout_fd, self.answer_batch(lines))
                if self._storage_untrusted:
                    break
                self.storage.checkpoint_if_far_behind()
        if self._storage_untrusted:
            log.error("exiting after a failed COMMIT; restart to recover from what is on disk")
            return 1
        log.info("stopping: %s", "signal" if self._stopping else "end of input")
        return 0

    def _within_limit(self, line: bytes) -> bytes | protocol.Rejected:
        """The line, or the rejection of a line longer than the limit (which is dropped)."""
        return line if len(line) <= self.max_line_bytes else self._oversized([line])

    def _oversized(self, pieces: list[bytes]) -> protocol.Rejected:
        log.warning("skipped a line longer than %d bytes", self.max_line_bytes)
        head = bytearray()
        for piece in pieces:  # only the beginning is searched for the asker
            head += piece[:protocol.OVERSIZED_HEAD_BYTES - len(head)]
            if len(head) >= protocol.OVERSIZED_HEAD_BYTES:
                break
        return protocol.oversized(bytes(head), self.max_line_bytes)

    def _read(self, fd: int) -> bytes:
        self._waiting_for_input = True
        try:
            if self._stopping:
                raise _Interrupted
            return os.read(fd, READ_SIZE)
        finally:
            self._waiting_for_input = False

    @staticmethod
    def _write(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(fd, view)
            except OSError as error:
                if error.errno == errno.EINTR:
                    continue
                raise
            view = view[written:]

    def _install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT: finish the batch in hand, then exit 0."""

        def stop(signum: int, _frame) -> None:
            self._stopping = True
            if self._waiting_for_input:
                raise _Interrupted

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
