"""The node: reads JSON lines from stdin, dispatches each request to its handler, applies a
whole batch in one transaction (group commit), and writes the replies only after COMMIT. In a
cluster, it sends the parts of requests owned by other nodes on to them and relays their replies."""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import itertools
import logging
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, TypeGuard, cast

from kafka_node import cluster, decoding, framing, protocol
from kafka_node import storage as storage_lib
from kafka_node.protocol import ErrorCode
from kafka_node.storage import Storage, UnusableDatabase

log = logging.getLogger(__name__)

#: Bytes asked of stdin per read: everything a busy client has queued arrives in one batch.
READ_SIZE = 1 << 20


Request = protocol.Envelope | protocol.Rejected
Reply = protocol.Outgoing | None  # None: nobody to answer
Answered = tuple[Request, Reply]
Decoded = Request | protocol.PeerReplyEnvelope

#: The longest wait for input that select accepts here (an infinite --forward-timeout is allowed).
_LONGEST_WAIT = 86_400.0

#: Seconds more a part sent on may take while input is waiting to be read: its reply may be there.
EXPIRY_GRACE = 0.5

#: Exit status after refusing, at init, a database file named with the node's id.
EXIT_REFUSED = 2


class _Interrupted(Exception):
    """A stop signal arrived while the node was waiting for input."""


class _BatchAbandoned(Exception):
    """The database as a whole failed inside the transaction, which was rolled back."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class Node:
    """One kafka-node serving Maelstrom requests against one log: `storage`, or, when the
    file's name holds the node's id, the one `open_storage(node_id)` opens at init."""

    def __init__(self, storage: Storage | None, poll_max_per_key: int, max_line_bytes: int,
                 max_batch: int | None = None, poll_max_messages: int = 100_000,
                 poll_max_bytes: int = 4 << 20, open_storage: Callable[[str], Storage] | None = None,
                 forward_timeout: float = cluster.FORWARD_TIMEOUT) -> None:
        if storage is None and open_storage is None:
            raise ValueError("a node needs its storage, or a way to open it at init")
        self._storage = storage
        self._open_storage = open_storage
        self.forward_timeout = forward_timeout
        # Once init names several nodes: the parts of requests owned elsewhere, in flight.
        self._forwarding: cluster.Forwarding | None = None
        self._refused = False  # init could not open the log: stop, exit status 2
        self.poll_max_messages = poll_max_messages
        self.poll_max_bytes = poll_max_bytes
        self.max_batch = max_batch
        self.poll_max_per_key = poll_max_per_key
        self.max_line_bytes = max_line_bytes
        self.node_id: str | None = None
        self._stopping = False
        self._serving = False
        self._waiting_for_input = False
        self._storage_untrusted = False
        # Replies of applied batches waiting for their COMMIT to be durable, in order, and the
        # lock that the serve loop and the WAL syncer's thread take to write them.
        self._held: collections.deque[tuple[int, list[Answered]]] = collections.deque()
        self._out = threading.Lock()
        self._stdout_fd = 1
        self._writer_error: OSError | None = None
        # While serving: a pipe the syncer's thread writes to after a failed sync, so that the
        # serve loop, waiting for input, wakes up and stops.
        self._alarm: tuple[int, int] | None = None
        # Sends are not here: consecutive sends are answered together by `send`.
        self._handlers: dict[type, Callable[[Any], protocol.Reply]] = {
            protocol.Init: self.init,
            protocol.Poll: self.poll,
            protocol.CommitOffsets: self.commit_offsets,
            protocol.ListCommittedOffsets: self.list_committed_offsets,
        }

    @property
    def storage(self) -> Storage:
        """The open log (handlers run only once init has opened it)."""
        if self._storage is None:
            raise RuntimeError("the log is opened at init")
        return self._storage

    @property
    def storage_opened(self) -> Storage | None:
        return self._storage

    # --- handlers, one per request type -----------------------------------------------

    def init(self, body: protocol.Init) -> protocol.InitOk | protocol.Error:
        if self._storage is None and self._open_storage is not None:
            try:
                self._storage = self._open_storage(body.node_id)
            except UnusableDatabase as refusal:
                log.error("refusing to start: %s", refusal)
                self._refused = True
                return protocol.Error(in_reply_to=body.msg_id, code=ErrorCode.CRASH, text=f"refusing to start: {refusal}")
            if self._serving:
                self._storage.on_sync(self._release)
        self.node_id = body.node_id
        if len(set(body.node_ids)) > 1 or self._forwarding is not None:
            members = cluster.Cluster(body.node_id, body.node_ids)
            if self._forwarding is None:
                self._forwarding = cluster.Forwarding(members, self.forward_timeout)
            else:  # parts in flight are still answered through the same table
                self._forwarding.cluster = members
        log.info("initialised as %s (cluster %s)", body.node_id, ",".join(body.node_ids))
        return protocol.InitOk(in_reply_to=body.msg_id)

    def send(self, bodies: list[protocol.Send]) -> list[protocol.SendOk]:
        """A run of consecutive sends, appended together in their order."""
        offsets = self.storage.append_many([(body.key, protocol.message_text(body)) for body in bodies])
        return [protocol.SendOk(in_reply_to=body.msg_id, offset=offset) for body, offset in zip(bodies, offsets, strict=True)]

    def poll(self, body: protocol.Poll) -> protocol.PollOk:
        offsets, per_key = body.offsets, self.poll_max_per_key
        if len(offsets) * per_key > self.poll_max_messages:
            # Bound the reply: fewer messages per key, and past the budget, keys left out
            # (a poll may return any prefix of a key's log, including none of it).
            per_key = max(1, self.poll_max_messages // len(offsets))
            offsets = dict(itertools.islice(offsets.items(), self.poll_max_messages))
        msgs = self.storage.read_from(offsets, per_key, self.poll_max_bytes)
        return protocol.PollOk(in_reply_to=body.msg_id, msgs=protocol.json_text(msgs))

    def commit_offsets(self, body: protocol.CommitOffsets) -> protocol.CommitOffsetsOk:
        self.storage.commit_offsets(body.offsets)
        return protocol.CommitOffsetsOk(in_reply_to=body.msg_id)

    def list_committed_offsets(self, body: protocol.ListCommittedOffsets) -> protocol.ListCommittedOffsetsOk:
        offsets = self.storage.committed_offsets(body.keys)
        return protocol.ListCommittedOffsetsOk(in_reply_to=body.msg_id, offsets=offsets)

    # --- one batch ----------------------------------------------------------------------

    def answer_batch(self, lines: Sequence[framing.Line | framing.Oversized]) -> bytes:
        """Apply every request of a batch in one transaction and make it durable; return the
        encoded replies.

        `lines` holds the batch's input lines, an `Oversized` in place of each line that was
        too long to keep."""
        settled = self._storage_untrusted  # then nothing is applied: the replies say so already
        answered = self.apply_batch(lines)
        if not settled and self._storage is not None:
            try:
                self._storage.sync()
            except storage_lib.StorageError as error:
                answered = self._after_failed_sync(answered, error)
        return self._encode([reply for _, reply in answered])

    def apply_batch(self, lines: Sequence[framing.Line | framing.Oversized]) -> list[Answered]:
        """Apply every request of a batch in one transaction; each request with its reply.
        The replies may not leave the node before the batch's COMMIT is durable
        (`storage.durable` reaching `storage.commits`).

        An init is answered on its own, between the requests before it and those after it,
        since it may open the log and make the node part of a cluster."""
        decode = self._decode if self._forwarding is None else self._decode_in_cluster
        requests = [decode(line) for line in lines if isinstance(line, framing.Oversized) or (line and not line.isspace())]
        answered: list[Answered] = []
        after_init = 0
        for at, request in enumerate(requests):
            if type(request) is protocol.Envelope and type(request.body) is protocol.Init:
                answered += self._apply(requests[after_init:at])
                answered.append((request, self._answer(request)))
                after_init = at + 1
        answered += self._apply(requests[after_init:] if after_init else requests)
        return answered

    def _apply(self, decoded: list[Decoded]) -> list[Answered]:
        """Apply requests that hold no init: before init, each is refused alone; in a cluster,
        the parts owned elsewhere are sent on first (`_route`)."""
        if self.node_id is None or self._storage is None:
            return [(r, self._answer(r)) for r in cast(list[Request], decoded)]  # `decode` gives no peer replies
        requests = self._route(decoded) if self._forwarding is not None else cast(list[Request], decoded)
        size = self.max_batch or len(requests) or 1
        answered: list[Answered] = []
        for start in range(0, len(requests), size):
            chunk = requests[start:start + size]
            if self._storage_untrusted:  # a COMMIT of this read failed: apply nothing more
                replies = [self._error_for(r, ErrorCode.TEMPORARILY_UNAVAILABLE, "not applied: the node is "
                                           "stopping after a failed COMMIT") if self._uses_storage(r)
                           else self._answer(r) for r in chunk]
            else:
                replies = self._answer_in_one_transaction(chunk)
            answered += zip(chunk, replies, strict=True)
        return answered

    def _after_failed_sync(self, answered: list[Answered], error: BaseException) -> list[Answered]:
        """After a failed sync of the WAL, whether what was committed since the last good one
        is on disk is unknown: each request that touched storage gets the indefinite 13, and
        the node applies nothing more (as after a failed COMMIT)."""
        if not self._storage_untrusted:
            log.error("a sync of the WAL failed (%s): the outcome of the last batches is unknown", error)
        self._storage_untrusted = True
        text = f"sync failed, outcome unknown: {storage_lib.describe(error)}"
        return [(request, self._error_for(request, ErrorCode.CRASH, text) if self._uses_storage(request) else reply)
                for request, reply in answered]

    def _decode(self, line: framing.Line | framing.Oversized) -> Request:
        if isinstance(line, framing.Oversized):
            log.warning("skipped a line longer than %d bytes", self.max_line_bytes)
            return decoding.refuse_oversized(line.head, self.max_line_bytes)
        return decoding.decode(line)

    def _decode_in_cluster(self, line: framing.Line | framing.Oversized) -> Decoded:
        if isinstance(line, framing.Oversized):
            return self._decode(line)
        return decoding.decode_in_cluster(line)

    # --- a cluster: forwarding to the owners of keys -------------------------------------

    def _route(self, decoded: list[Decoded]) -> list[Request]:
        """What of a batch to apply here, in order: requests from other nodes, and the parts
        of clients' requests this node owns. The parts owned elsewhere are sent on at once
        (all in one write), and replies from other nodes settle the parts they answer."""
        forwarding = self._forwarding
        assert forwarding is not None  # only called in a cluster
        members = forwarding.cluster
        local: list[Request] = []
        out: list[protocol.Outgoing | protocol.Forwarded] = []
        with self._out:
            for request in decoded:
                if isinstance(request, protocol.PeerReplyEnvelope):
                    if not members.is_member(request.src):
                        log.info("ignored a %s from %s, which is not a node of the cluster",
                                 request.body.__struct_config__.tag, request.src)
                    elif (reply := forwarding.settle_remote(request.src, request.body)) is not None:
                        out.append(reply)
                elif isinstance(request, protocol.Rejected) or members.is_member(request.src):
                    local.append(request)  # a peer's request is for keys this node owns
                else:
                    try:
                        part, sent = forwarding.route(request)
                    except Exception as error:  # never foreseen: answer it, never crash
                        log.exception("unexpected failure while forwarding a request")
                        local.append(protocol.Rejected(request.src, request.dest, request.body.msg_id, ErrorCode.CRASH,
                                                       f"internal error: {error!r}"))
                        continue
                    out += sent
                    if part is not None:
                        local.append(part)
            if out:
                self._write(self._stdout_fd, protocol.encode(out))
        return local

    def _until_next_deadline(self) -> float | None:
        """Seconds until a part sent on times out, if any is in flight."""
        deadline = self._forwarding.next_deadline() if self._forwarding is not None else None
        if deadline is None:
            return None
        return min(max(0.0, deadline - time.monotonic()), _LONGEST_WAIT)

    def _expire_forwards(self, stdin_fd: int | None = None) -> None:
        """Answer the requests whose parts sent on were not answered in time. With input
        waiting on `stdin_fd` (after a slow batch), a part gets EXPIRY_GRACE more, so that a
        reply that came in time but is not read yet is not given up on. Without parts in
        flight, or before the first deadline, this looks at nothing else."""
        forwarding = self._forwarding
        deadline = forwarding.next_deadline() if forwarding is not None else None
        if forwarding is None or deadline is None:
            return
        now = time.monotonic()
        if deadline > now:
            return
        if stdin_fd is not None and self._input_waiting(stdin_fd):
            now -= EXPIRY_GRACE
        with self._out:
            if replies := forwarding.expire(now):
                self._write(self._stdout_fd, protocol.encode(replies))

    def _answer_in_one_transaction(self, requests: list[Request]) -> list[Reply]:
        """Answer requests inside one transaction, each in a savepoint of its own, with one
        COMMIT for all of them before any reply is returned.

        A request whose statement fails rolls back its own savepoint and gets its own error;
        the others are committed. A failure of the database as a whole (write lock held
        elsewhere, disk full) rolls the transaction back and answers every request at once.
        If COMMIT itself fails, whether the batch reached the disk is unknown: every request
        that touched storage gets the indefinite error 13, and after an I/O error nothing
        more is applied (`storage_untrusted`).
        """
        if not any(self._uses_storage(r) for r in requests):
            return [self._answer(r) for r in requests]
        writes = any(isinstance(r, protocol.Envelope) and isinstance(r.body, (protocol.Send, protocol.CommitOffsets))
                     for r in requests)
        try:
            self.storage.begin(write=writes)
            try:
                replies = self._answer_in_savepoints(requests)
            except _BatchAbandoned:
                self.storage.rollback()
                raise
        except (storage_lib.StorageError, _BatchAbandoned) as failure:
            error = failure.error if isinstance(failure, _BatchAbandoned) else failure
            text = f"storage error, nothing applied: {storage_lib.describe(error)}"
            return [self._error_for(r, ErrorCode.TEMPORARILY_UNAVAILABLE, text) if self._uses_storage(r)
                    else self._answer(r) for r in requests]
        try:
            self.storage.commit()
        except storage_lib.StorageError as error:
            stored = sum(map(self._uses_storage, requests))
            log.error("COMMIT failed (%s): the outcome of %d requests is unknown", error, stored)
            self._storage_untrusted = storage_lib.cache_untrustworthy_after(error)
            text = f"commit failed, outcome unknown: {storage_lib.describe(error)}"
            return [self._error_for(r, ErrorCode.CRASH, text) if self._uses_storage(r) else reply
                    for r, reply in zip(requests, replies, strict=True)]
        return replies

    def _answer_in_savepoints(self, requests: list[Request]) -> list[Reply]:
        """Replies in request order. Each request runs in a savepoint of its own, except that
        a run of consecutive sends shares one (it is two statements, whatever its length);
        if that savepoint fails, each send of the run is tried again in its own. A poll
        later in the batch sees every send before it."""
        replies: list[Reply] = []
        run: list[protocol.Envelope] = []
        for request in requests:
            if self.node_id is not None and type(request) is protocol.Envelope and type(request.body) is protocol.Send:
                run.append(request)
                continue
            if run:
                replies += self._answer_sends(run)
                run = []
            if self._uses_storage(request):
                replies += self._in_savepoint([request], functools.partial(self._answer_alone, request))
            else:
                replies.append(self._answer(request))
        if run:
            replies += self._answer_sends(run)
        return replies

    def _answer_alone(self, request: Request) -> list[Reply]:
        return [self._answer(request)]

    def _answer_sends(self, run: list[protocol.Envelope]) -> list[Reply]:
        def append() -> list[Reply]:
            acks = self.send([request.body for request in run])  # type: ignore[misc]  # all sends
            return [self._reply(request.src, request.dest, ack) for request, ack in zip(run, acks, strict=True)]

        if len(run) == 1:
            return self._in_savepoint(run, append)
        try:
            with self.storage.savepoint():
                return append()
        except Exception as error:
            if self._batch_is_lost(error):
                raise _BatchAbandoned(error) from error
            return [reply for request in run for reply in self._answer_sends([request])]

    def _in_savepoint(self, requests: list[protocol.Envelope], answer: Callable[[], list[Reply]]) -> list[Reply]:
        """`answer()` inside a savepoint; if it fails, the savepoint is rolled back and each of
        `requests` gets an error instead: a definite 11 for a storage error, since nothing of
        it was applied, and 13 for anything unforeseen."""
        try:
            with self.storage.savepoint():
                return answer()
        except storage_lib.StorageError as error:
            if self._batch_is_lost(error):
                raise _BatchAbandoned(error) from error
            log.warning("a %s failed and was rolled back: %s", type(requests[0].body).__name__, error)
            code, text = ErrorCode.TEMPORARILY_UNAVAILABLE, f"storage error, nothing applied: {storage_lib.describe(error)}"
        except Exception as error:
            log.exception("unexpected failure; the request was rolled back")
            code, text = ErrorCode.CRASH, f"internal error: {error!r}"
        return [self._error_for(request, code, text) for request in requests]

    def _batch_is_lost(self, error: BaseException) -> bool:
        """Whether a failure inside a savepoint ends the whole transaction: SQLite rolled it
        back by itself, or the database as a whole failed, which the next request would meet
        too."""
        return storage_lib.is_whole_database_error(error) or not self.storage.in_transaction

    @property
    def storage_untrusted(self) -> bool:
        """After an I/O error at COMMIT the page cache may not match the disk: stop serving.

        A restart recovers from what is really on disk (as PostgreSQL does after a failed
        fsync); carrying on could hand out offsets that a half-written batch already used.
        """
        return self._storage_untrusted

    @staticmethod
    def _uses_storage(request: Request) -> TypeGuard[protocol.Envelope]:
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

    def _reply(self, asker: str, addressed_to: str | None, body: protocol.Reply) -> protocol.Outgoing:
        return protocol.Outgoing(src=self.node_id or addressed_to or "", dest=asker, body=body)

    @staticmethod
    def _encode(replies: list[protocol.Outgoing | None]) -> bytes:
        return protocol.encode([r for r in replies if r is not None])

    # --- the stdin loop -----------------------------------------------------------------

    def serve(self, stdin_fd: int = 0, stdout_fd: int = 1) -> int:
        """Serve until EOF or a stop signal; return the process exit status.

        Each batch is applied and committed at once, but its replies wait until the WAL is
        synced past its COMMIT. If more input is already waiting, the WAL syncer's thread
        makes that sync and writes the replies the moment it returns, while this loop applies
        the next batch; if not, this thread syncs at once. Without durability FULL every
        COMMIT counts as durable and replies leave at once. In a cluster the loop also
        wakes when a part sent on to another node reaches its deadline.
        """
        self._install_signal_handlers()
        self._stdout_fd = stdout_fd
        self._alarm = os.pipe()
        self._serving = True
        if self._storage is not None:
            self._storage.on_sync(self._release)
        lines = framing.LineSplitter(self.max_line_bytes)
        while not self._stopping:
            try:
                chunk = self._read(stdin_fd, self._until_next_deadline())
            except _Interrupted:
                break
            if chunk is None:  # woken by a deadline
                self._expire_forwards()
                continue
            batch = lines.feed(chunk) if chunk else lines.end()
            if batch:
                settled = self._storage_untrusted  # then nothing is applied: the replies say so already
                answered = self.apply_batch(batch)
                storage = self._storage
                self._hold(storage.commits if storage is not None and not settled else 0, answered)
                if storage is not None:
                    if self._input_waiting(stdin_fd):
                        storage.sync_soon()  # on the syncer's thread, while the next batch is applied
                    else:
                        storage.sync_here()  # nothing else to do: spare the thread's wake-up
                self._expire_forwards(stdin_fd)
                self._check_writer()
                if self._storage_untrusted or self._refused:
                    break
                if storage is not None:
                    storage.bound_wal()
            if not chunk:
                break
        self._finish()
        if self._refused:
            return EXIT_REFUSED
        if self._storage_untrusted:
            log.error("exiting after a failed COMMIT or sync; restart to recover from what is on disk")
            return 1
        log.info("stopping: %s", "signal" if self._stopping else "end of input")
        return 0

    def _finish(self) -> None:
        """Write every reply still held once its COMMIT is durable (or failed); answer the
        requests still waiting for other nodes with an error, since no reply can come now."""
        if self._storage is not None:
            with contextlib.suppress(storage_lib.StorageError):
                self._storage.sync()
        self._release()
        if self._storage is not None:
            self._storage.on_sync(None)
        with self._out:
            if self._forwarding is not None and (replies := self._forwarding.abandon("the node stopped first")):
                try:
                    self._write(self._stdout_fd, protocol.encode(replies))
                except OSError as error:
                    self._writer_error = error
            if self._alarm is not None:
                os.close(self._alarm[0])
                os.close(self._alarm[1])
                self._alarm = None
        self._serving = False
        self._check_writer()

    def _hold(self, commit: int, answered: list[Answered]) -> None:
        """Queue a batch's replies until COMMIT number `commit` is durable (going at once if it is)."""
        with self._out:
            self._held.append((commit, answered))
        self._release()

    def _release(self) -> None:
        """Write the replies of every held batch whose COMMIT is durable; after a failed sync,
        those not durable get 13 instead. Runs on the serve loop's thread and the syncer's."""
        with self._out:
            storage = self._storage
            while self._held:
                commit, answered = self._held[0]
                if storage is not None and commit > storage.durable:
                    failure = storage.sync_failure
                    if failure is None:
                        return
                    answered = self._after_failed_sync(answered, failure)
                    self._sound_alarm()
                self._held.popleft()
                if self._forwarding is None:
                    replies = [reply for _, reply in answered]
                else:  # the local part of a split request answers into its client's reply
                    replies = [self._forwarding.settle_local(request, reply) for request, reply in answered]
                try:
                    self._write(self._stdout_fd, self._encode(replies))
                except OSError as error:  # the reader is gone: the serve loop reports it
                    self._writer_error = error
                    self._held.clear()
                    self._sound_alarm()

    def _sound_alarm(self) -> None:
        """Wake the serve loop, waiting for input, to stop (caller holds `_out`)."""
        if self._alarm is not None:
            os.write(self._alarm[1], b"!")

    def _check_writer(self) -> None:
        """Raise, on the serve loop's thread, a write error met by the syncer's thread."""
        if self._writer_error is not None:
            raise self._writer_error

    @staticmethod
    def _input_waiting(fd: int) -> bool:
        return bool(select.select([fd], [], [], 0)[0])

    def _read(self, fd: int, timeout: float | None = None) -> bytes | None:
        """The next chunk of input; b"" at its end, or once a failed sync means stopping; None
        if nothing came within `timeout` seconds."""
        self._waiting_for_input = True
        try:
            if self._stopping:
                raise _Interrupted
            alarm = self._alarm[0] if self._alarm else -1
            ready = select.select([fd, alarm] if alarm >= 0 else [fd], [], [], timeout)[0]
            if not ready:
                return None
            if alarm in ready:
                return b""
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

        def stop(signum: int, _frame: FrameType | None) -> None:
            self._stopping = True
            if self._waiting_for_input:
                raise _Interrupted

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
