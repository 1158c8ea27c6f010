"""One batch of storage requests applied to the log: its writes in one transaction, a savepoint
each, its reads without one; what failed is returned as what happened (`errors`), never as a code."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from kafka_node import errors, protocol
from kafka_node.errors import Failure
from kafka_node.rpcs import Answer, PollLimits, Rpc, Written, rpc_of
from kafka_node.storage import Storage, StorageError
from kafka_node.storage.failures import is_whole_database_error
from kafka_node.storage.log import Log
from kafka_node.unsynced import PartitionedUnsynced, Unsynced

logger = logging.getLogger(__name__)


class _BatchLost(Exception):
    """The database as a whole failed inside the transaction, which SQLite or we rolled back."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def apply(storage: Storage, requests: list[protocol.Envelope], limits: PollLimits,
          unsynced: Unsynced | PartitionedUnsynced) -> list[Answer]:
    """Each request's answer, in order. Reads alone take no transaction and no lock; a batch
    with writes is one transaction, committed once, in which a poll sees every send before it.

    A write runs in a savepoint of its own (a run of consecutive sends shares one; if that
    fails, each send of the run is applied again in its own), and a failing statement costs
    only its own request: nothing of it was applied. A transaction holding one write needs no
    savepoint: if that write fails, the transaction, which holds nothing else, is rolled back
    instead. A failure of the database as a whole (the write lock held elsewhere, a full disk)
    answers every request of the transaction at once: nothing applied. If COMMIT fails,
    whether the batch reached the disk is unknown, and after an I/O error the storage is no
    longer trusted.

    With replicas, `unsynced` also holds what the in-sync sets do not hold yet: reads see it
    as they see what is not yet durable (a poll reads below it).
    """
    log = storage.log
    durable = storage.durable
    writes = sum(rpc_of(request.body).writes for request in requests)
    if not writes:
        reading = _Reading(unsynced, durable)
        return [_read(log, request.body, limits, reading) for request in requests]
    try:
        log.begin()
    except StorageError as error:  # the write lock is held elsewhere: the reads need none
        reading = _Reading(unsynced, durable)
        return [Answer(errors.storage_failed(error), 0) if rpc_of(request.body).writes
                else _read(log, request.body, limits, reading) for request in requests]
    transaction = _Transaction(log, log.commits + 1, limits, unsynced, durable, savepoints=writes > 1)
    try:
        answers = transaction.answers(requests)
    except _BatchLost as lost:
        log.rollback()
        return [Answer(errors.storage_failed(lost.error), 0)] * len(requests)
    if not log.in_transaction:  # its one write failed and was rolled back: nothing to commit
        return answers
    try:
        storage.commit()
    except StorageError as error:
        logger.error("COMMIT failed (%s): the outcome of %d requests is unknown", error, len(requests))
        return [Answer(errors.commit_failed(error), 0)] * len(requests)
    unsynced.record(transaction.commit, transaction.written.sent, transaction.written.committed, durable)
    return answers


class _Reading:
    """What a read may see and must wait for: below the offsets commits not yet durable gave
    (a poll's reply then waits for nothing), and the commits that moved listed offsets."""

    def __init__(self, unsynced: Unsynced | PartitionedUnsynced, durable: int) -> None:
        self.unsynced = unsynced
        self.durable = durable

    def poll(self, keys: Iterable[str]) -> tuple[dict[str, int], int]:
        return self.unsynced.poll_below(keys, self.durable), 0

    def listing(self, keys: Iterable[str]) -> int:
        return self.unsynced.listing_waits_for(keys, self.durable)


class _Transaction(_Reading):
    """The requests of one writing transaction, answered in order before its COMMIT. A read
    of a key this transaction wrote sees it, and its reply waits for this commit."""

    def __init__(self, log: Log, commit: int, limits: PollLimits, unsynced: Unsynced | PartitionedUnsynced, durable: int,
                 savepoints: bool) -> None:
        super().__init__(unsynced, durable)
        self.log = log
        self.commit = commit  # the number this transaction's COMMIT will have
        self.savepoints = savepoints  # more than one write: each needs a savepoint of its own
        self.limits = limits
        self.written = Written()

    def answers(self, requests: list[protocol.Envelope]) -> list[Answer]:
        """Every request's answer in order; a run of consecutive writes of a type applied in
        runs is applied by one call."""
        answers: list[Answer] = []
        run: list[Any] = []
        run_rpc: Rpc[Any] | None = None
        for request in requests:
            body = request.body
            rpc = rpc_of(body)
            if run and rpc is not run_rpc:
                answers += self._writes(run_rpc, run)  # type: ignore[arg-type]  # set with the run
                run = []
            if not rpc.writes:
                answers.append(_read(self.log, body, self.limits, self, self.log.in_transaction))
            elif rpc.in_runs:
                run.append(body)
                run_rpc = rpc
            else:
                answers += self._writes(rpc, [body])
        if run:
            answers += self._writes(run_rpc, run)  # type: ignore[arg-type]
        return answers

    def poll(self, keys: Iterable[str]) -> tuple[dict[str, int], int]:
        keys = list(keys)
        sent = self.written.sent
        below, _ = super().poll(key for key in keys if key not in sent)
        return below, self.commit if not sent.keys().isdisjoint(keys) else 0

    def listing(self, keys: Iterable[str]) -> int:
        keys = list(keys)
        return self.commit if not self.written.committed.isdisjoint(keys) else super().listing(keys)

    def _writes(self, rpc: Rpc[Any], bodies: list[Any]) -> list[Answer]:
        """Writes of one type inside a savepoint (or, as the transaction's one write, without
        one). If a run of several fails, each is applied again in a savepoint of its own; if
        one fails, its savepoint (or the transaction) is rolled back and it gets what went
        wrong instead: nothing applied for a storage error, an unknown outcome for anything
        unforeseen."""
        if len(bodies) > 1:
            try:
                with self.log.savepoint():
                    replies = rpc.write(self.log, bodies)
            except Exception as error:
                if is_whole_database_error(error) or not self.log.in_transaction:
                    raise _BatchLost(error) from error
                return [answer for body in bodies for answer in self._writes(rpc, [body])]
            return self._remembered(rpc, bodies, replies)
        failure: Failure
        try:
            if self.savepoints:
                with self.log.savepoint():
                    replies = rpc.write(self.log, bodies)
            else:
                replies = rpc.write(self.log, bodies)
        except StorageError as error:
            if is_whole_database_error(error) or not self.log.in_transaction:
                raise _BatchLost(error) from error
            self._undo()
            logger.warning("a %s failed and was rolled back: %s", rpc.name, error)
            failure = errors.storage_failed(error)
        except Exception as error:
            self._undo()
            logger.exception("unexpected failure; the request was rolled back")
            failure = errors.unforeseen(error)
        else:
            return self._remembered(rpc, bodies, replies)
        return [Answer(failure, 0)]

    def _remembered(self, rpc: Rpc[Any], bodies: list[Any], replies: list[protocol.Reply]) -> list[Answer]:
        """The writes' answers, each waiting for this commit, after noting what they changed."""
        for body, reply in zip(bodies, replies, strict=True):
            rpc.remember(self.written, body, reply)
        return [Answer(reply, self.commit) for reply in replies]

    def _undo(self) -> None:
        """Without a savepoint, a failed write is undone with the whole transaction."""
        if not self.savepoints:
            self.log.rollback()


def _read(log: Log, body: protocol.Request, limits: PollLimits, reading: _Reading, in_transaction: bool = False) -> Answer:
    """A read's answer, with the commit it waits for. A failing statement costs only this
    request (nothing applied); inside a writing transaction, a failure of the database as a
    whole ends the transaction."""
    rpc = rpc_of(body)
    try:
        return rpc.read(log, body, limits, reading)
    except StorageError as error:
        if in_transaction and (is_whole_database_error(error) or not log.in_transaction):
            raise _BatchLost(error) from error
        logger.warning("a %s failed: %s", rpc.name, error)
        return Answer(errors.storage_failed(error), 0)
    except Exception as error:
        logger.exception("unexpected failure of a read")
        return Answer(errors.unforeseen(error), 0)
