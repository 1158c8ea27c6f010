"""One batch of storage requests applied to the log: its writes in one transaction, a savepoint
each, its reads without one, and every failure mapped to Maelstrom's 11 or 13, in this one place."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from kafka_node import handlers, protocol
from kafka_node.handlers import PollLimits
from kafka_node.protocol import ErrorCode
from kafka_node.storage import Storage, StorageError, describe
from kafka_node.storage.failures import cache_untrustworthy_after, is_whole_database_error
from kafka_node.storage.log import Log
from kafka_node.unsynced import Unsynced

logger = logging.getLogger(__name__)

#: A request's reply, and the commit that must be durable before it may leave (0: none).
Answer = tuple[protocol.Reply, int]

_WRITES = (protocol.Send, protocol.CommitOffsets)


class _BatchLost(Exception):
    """The database as a whole failed inside the transaction, which SQLite or we rolled back."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def apply(storage: Storage, requests: list[protocol.Envelope], limits: PollLimits, unsynced: Unsynced) -> list[Answer]:
    """Each request's answer, in order. Reads alone take no transaction and no lock; a batch
    with writes is one transaction, committed once, in which a poll sees every send before it.

    A write runs in a savepoint of its own (a run of consecutive sends shares one; if that
    fails, each send of the run is applied again in its own), and a failing statement costs
    only its own request: 11, nothing of it was applied. A transaction holding one write
    needs no savepoint: if that write fails, the transaction, which holds nothing else, is
    rolled back instead. A failure of the database as a whole
    (the write lock held elsewhere, a full disk) answers every request of the transaction 11
    at once. If COMMIT fails, whether the batch reached the disk is unknown: every request
    gets the indefinite 13, and after an I/O error the storage is no longer trusted.
    """
    log = storage.log
    writes = sum(isinstance(request.body, _WRITES) for request in requests)
    if not writes:
        reading = _Reading(unsynced, storage.durable)
        return [_read(log, request.body, limits, reading) for request in requests]
    try:
        log.begin()
    except StorageError as error:  # the write lock is held elsewhere: the reads need none
        reading = _Reading(unsynced, storage.durable)
        return [_refusal(request, ErrorCode.TEMPORARILY_UNAVAILABLE, f"storage error, nothing applied: {describe(error)}")
                if isinstance(request.body, _WRITES) else _read(log, request.body, limits, reading)
                for request in requests]
    transaction = _Transaction(log, log.commits + 1, limits, unsynced, storage.durable, savepoints=writes > 1)
    try:
        answers = transaction.answers(requests)
    except _BatchLost as lost:
        log.rollback()
        text = f"storage error, nothing applied: {describe(lost.error)}"
        return [_refusal(request, ErrorCode.TEMPORARILY_UNAVAILABLE, text) for request in requests]
    if not log.in_transaction:  # its one write failed and was rolled back: nothing to commit
        return answers
    try:
        log.commit()
    except StorageError as error:
        logger.error("COMMIT failed (%s): the outcome of %d requests is unknown", error, len(requests))
        if cache_untrustworthy_after(error):
            storage.distrust()
        text = f"commit failed, outcome unknown: {describe(error)}"
        return [_refusal(request, ErrorCode.CRASH, text) for request in requests]
    unsynced.record(transaction.commit, transaction.sent, transaction.committed, storage.durable)
    return answers


class _Reading:
    """What a read may see and must wait for: below the offsets commits not yet durable gave
    (a poll's reply then waits for nothing), and the commits that moved listed offsets."""

    def __init__(self, unsynced: Unsynced, durable: int) -> None:
        self.unsynced = unsynced
        self.durable = durable

    def poll(self, keys: Iterable[str]) -> tuple[dict[str, int], int]:
        """The offsets below which each key is read, and the commit the reply waits for."""
        return self.unsynced.poll_below(keys, self.durable), 0

    def listing(self, keys: Iterable[str]) -> int:
        return self.unsynced.listing_waits_for(keys, self.durable)


class _Transaction(_Reading):
    """The requests of one writing transaction, answered in order before its COMMIT. A read
    of a key this transaction wrote sees it, and its reply waits for this commit."""

    def __init__(self, log: Log, commit: int, limits: PollLimits, unsynced: Unsynced, durable: int,
                 savepoints: bool) -> None:
        super().__init__(unsynced, durable)
        self.log = log
        self.commit = commit  # the number this transaction's COMMIT will have
        self.savepoints = savepoints  # more than one write: each needs a savepoint of its own
        self.limits = limits
        self.sent: dict[str, int] = {}  # key -> the first offset this transaction gave it
        self.committed: set[str] = set()  # keys whose committed offset it moved

    def answers(self, requests: list[protocol.Envelope]) -> list[Answer]:
        answers: list[Answer] = []
        run: list[protocol.Envelope] = []
        for request in requests:
            if type(request.body) is protocol.Send:
                run.append(request)
                continue
            if run:
                answers += self._sends(run)
                run = []
            body = request.body
            if type(body) is protocol.CommitOffsets:
                answers += self._commit(request, body)
            else:
                answers.append(_read(self.log, body, self.limits, self, self.log.in_transaction))
        if run:
            answers += self._sends(run)
        return answers

    def _commit(self, request: protocol.Envelope, body: protocol.CommitOffsets) -> list[Answer]:
        def commit() -> list[protocol.Reply]:
            return [handlers.commit_offsets(self.log, body)]

        return self._write([request], commit)

    def poll(self, keys: Iterable[str]) -> tuple[dict[str, int], int]:
        keys = list(keys)
        below, _ = super().poll(key for key in keys if key not in self.sent)
        return below, self.commit if not self.sent.keys().isdisjoint(keys) else 0

    def listing(self, keys: Iterable[str]) -> int:
        keys = list(keys)
        return self.commit if not self.committed.isdisjoint(keys) else super().listing(keys)

    def _sends(self, run: list[protocol.Envelope]) -> list[Answer]:
        bodies: list[protocol.Send] = [request.body for request in run]  # type: ignore[misc]  # all sends

        def append() -> list[protocol.Reply]:
            return list(handlers.send(self.log, bodies))

        if len(run) == 1:
            return self._write(run, append)
        try:
            with self.log.savepoint():
                replies = append()
        except Exception as error:
            if is_whole_database_error(error) or not self.log.in_transaction:
                raise _BatchLost(error) from error
            return [answer for request in run for answer in self._sends([request])]
        self._remember(run, replies)
        return [(reply, self.commit) for reply in replies]

    def _write(self, requests: list[protocol.Envelope], write: Callable[[], list[protocol.Reply]]) -> list[Answer]:
        """`write()` inside a savepoint (or, as the transaction's one write, without one); if
        it fails, the savepoint (or the transaction) is rolled back and each of `requests` gets
        an error instead: a definite 11 for a storage error, since nothing of it was applied,
        and 13 for anything unforeseen."""
        try:
            if self.savepoints:
                with self.log.savepoint():
                    replies = write()
            else:
                replies = write()
        except StorageError as error:
            if is_whole_database_error(error) or not self.log.in_transaction:
                raise _BatchLost(error) from error
            self._undo()
            logger.warning("a %s failed and was rolled back: %s", type(requests[0].body).__name__, error)
            code, text = ErrorCode.TEMPORARILY_UNAVAILABLE, f"storage error, nothing applied: {describe(error)}"
        except Exception as error:
            self._undo()
            logger.exception("unexpected failure; the request was rolled back")
            code, text = ErrorCode.CRASH, f"internal error: {error!r}"
        else:
            self._remember(requests, replies)
            return [(reply, self.commit) for reply in replies]
        return [_refusal(request, code, text) for request in requests]

    def _remember(self, requests: list[protocol.Envelope], replies: list[protocol.Reply]) -> None:
        """Remember what this transaction wrote: the first offset it gave each key it sent to,
        and the keys whose committed offsets it moved."""
        for request, reply in zip(requests, replies, strict=True):
            body = request.body
            if type(reply) is protocol.SendOk and type(body) is protocol.Send:
                self.sent.setdefault(body.key, reply.offset)
            elif type(body) is protocol.CommitOffsets:
                self.committed.update(body.offsets)

    def _undo(self) -> None:
        """Without a savepoint, a failed write is undone with the whole transaction."""
        if not self.savepoints:
            self.log.rollback()


def _read(log: Log, body: protocol.Request, limits: PollLimits, reading: _Reading, in_transaction: bool = False) -> Answer:
    """A poll's or a listing's answer, with the commit it waits for. A failing statement costs
    only this request (11); inside a writing transaction, a failure of the database as a
    whole ends the transaction."""
    try:
        if type(body) is protocol.Poll:
            below, needed = reading.poll(body.offsets)
            return handlers.poll(log, body, limits, below), needed
        assert type(body) is protocol.ListCommittedOffsets, body  # `apply` is given storage requests only
        return handlers.list_committed_offsets(log, body), reading.listing(body.keys)
    except StorageError as error:
        if in_transaction and (is_whole_database_error(error) or not log.in_transaction):
            raise _BatchLost(error) from error
        logger.warning("a %s failed: %s", type(body).__name__, error)
        return protocol.Error(in_reply_to=body.msg_id, code=ErrorCode.TEMPORARILY_UNAVAILABLE,
                              text=f"storage error, nothing applied: {describe(error)}"), 0
    except Exception as error:
        logger.exception("unexpected failure of a read")
        return protocol.Error(in_reply_to=body.msg_id, code=ErrorCode.CRASH, text=f"internal error: {error!r}"), 0


def _refusal(request: protocol.Envelope, code: ErrorCode, text: str) -> Answer:
    return protocol.Error(in_reply_to=request.body.msg_id, code=code, text=text), 0
