"""What went wrong with a request the node could not carry out, and the one place where that becomes
Maelstrom's error 11 (nothing was applied) or 13 (the outcome is unknown, or nobody foresaw it)."""

from __future__ import annotations

from dataclasses import dataclass

from kafka_node import protocol
from kafka_node.protocol import ErrorCode
from kafka_node.storage import describe


@dataclass(frozen=True, slots=True)
class NothingApplied:
    """The request certainly had no effect: a definite error, so the client may count it as never done."""

    text: str


@dataclass(frozen=True, slots=True)
class OutcomeUnknown:
    """The request may or may not have taken effect (a failed COMMIT or sync, a part unanswered,
    a failure nobody foresaw): only an indefinite error is honest."""

    text: str


@dataclass(frozen=True, slots=True)
class RefusedElsewhere:
    """Another node of the cluster answered a part with this error of its own: passed on as it came."""

    code: int
    text: str


Failure = NothingApplied | OutcomeUnknown | RefusedElsewhere


def storage_failed(error: BaseException) -> NothingApplied:
    """A statement or transaction that failed and was rolled back: nothing of it was applied."""
    return NothingApplied(f"storage error, nothing applied: {describe(error)}")


def commit_failed(error: BaseException) -> OutcomeUnknown:
    """A COMMIT that failed: whether the batch reached the disk is unknown."""
    return OutcomeUnknown(f"commit failed, outcome unknown: {describe(error)}")


def unforeseen(error: BaseException) -> OutcomeUnknown:
    """A failure nobody foresaw: answered, never a crash, and never promised to have done nothing."""
    return OutcomeUnknown(f"internal error: {error!r}")


def is_definite(failure: Failure) -> bool:
    """Whether the failure promises that nothing was applied (an unknown code of another node's does not)."""
    if isinstance(failure, RefusedElsewhere):
        return failure.code in ErrorCode.__members__.values() and ErrorCode(failure.code).is_definite()
    return isinstance(failure, NothingApplied)


def code_of(failure: Failure) -> int:
    if isinstance(failure, RefusedElsewhere):
        return failure.code
    return ErrorCode.TEMPORARILY_UNAVAILABLE if isinstance(failure, NothingApplied) else ErrorCode.CRASH


def error_reply(msg_id: int | None, failure: Failure) -> protocol.Error:
    """The error body that answers a request with msg_id `msg_id` that met `failure`."""
    return protocol.Error(in_reply_to=msg_id, code=code_of(failure), text=failure.text)


def lost_in_sync(reply: protocol.Outgoing) -> protocol.Outgoing:
    """What is sent in place of `reply` when the sync it waited for failed: whether what it
    reports is on disk is unknown."""
    failure = OutcomeUnknown("sync failed, outcome unknown")
    return protocol.Outgoing(src=reply.src, dest=reply.dest, body=error_reply(reply.body.in_reply_to, failure))


def not_replicated(reply: protocol.Outgoing) -> protocol.Outgoing:
    """What is sent in place of `reply` when the in-sync set did not come to hold the commit it
    waited for (in time, or before this node stopped leading): the write is in this node's log
    and may still be on other replicas, so whether it stays is unknown."""
    failure = OutcomeUnknown("not held by every in-sync replica in time; outcome unknown")
    return protocol.Outgoing(src=reply.src, dest=reply.dest, body=error_reply(reply.body.in_reply_to, failure))
