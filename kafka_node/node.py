"""The node's core, with no I/O of its own: a batch of input lines in; the replies out, each with
the commit it waits for, and the messages to send other nodes at once. Init, and a cluster's routing."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

from kafka_node import batch, cluster, decoding, framing, protocol
from kafka_node.handlers import PollLimits
from kafka_node.outbox import Held
from kafka_node.protocol import ErrorCode
from kafka_node.storage import LogFile, Storage, StorageError, UnusableDatabase
from kafka_node.unsynced import Unsynced

log = logging.getLogger(__name__)

Request = protocol.Envelope | protocol.Rejected
Decoded = Request | protocol.PeerReplyEnvelope


class Step(NamedTuple):
    """What one batch of input gives: replies for the outbox, and requests to send on now."""

    held: list[Held]
    forwarded: list[protocol.Forwarded]


class Node:
    """One kafka-node serving Maelstrom requests against the log `log_file` opens (at start-up,
    or at init when its path names the node's id)."""

    def __init__(self, log_file: LogFile, poll_limits: PollLimits | None = None, max_batch: int | None = None,
                 max_line_bytes: int = framing.DEFAULT_MAX_LINE_BYTES, forward_timeout: float = cluster.FORWARD_TIMEOUT) -> None:
        self.log_file = log_file
        self.poll_limits = poll_limits or PollLimits()
        self.max_batch = max_batch
        self.max_line_bytes = max_line_bytes
        self.forward_timeout = forward_timeout
        self.node_id: str | None = None
        self.refused = False  # init could not open the log: stop, exit status 2
        # Once init names several nodes: the parts of requests owned elsewhere, in flight.
        self.forwarding: cluster.Forwarding | None = None
        self._unsynced = Unsynced()

    @property
    def storage(self) -> Storage | None:
        return self.log_file.storage

    @property
    def stopping(self) -> bool:
        """Whether serving must end after this batch: init refused the log, or the log's file
        can no longer be trusted (a failed COMMIT or sync)."""
        return self.refused or (self.storage is not None and self.storage.untrusted)

    # --- one batch ----------------------------------------------------------------------

    def receive(self, lines: Sequence[framing.Line | framing.Oversized]) -> Step:
        """Answer every request of a batch: its writes in one transaction, committed before
        this returns (the replies wait in the outbox for it to be durable).

        An init is answered on its own, between the requests before it and those after it,
        since it may open the log and make the node part of a cluster."""
        decoded = [self._decode(line) for line in lines if isinstance(line, framing.Oversized) or (line and not line.isspace())]
        step = Step([], [])
        after_init = 0
        for at, request in enumerate(decoded):
            if type(request) is protocol.Envelope and type(request.body) is protocol.Init:
                self._answer(decoded[after_init:at], step)
                step.held.append(Held(0, self._reply(request, self._init(request.body))))
                after_init = at + 1
        self._answer(decoded[after_init:] if after_init else decoded, step)
        return step

    def _decode(self, line: framing.Line | framing.Oversized) -> Decoded:
        if isinstance(line, framing.Oversized):
            log.warning("skipped a line longer than %d bytes", self.max_line_bytes)
            return decoding.refuse_oversized(line.head, self.max_line_bytes)
        if self.forwarding is None:
            return decoding.decode(line)
        return decoding.decode_in_cluster(line)

    def _answer(self, decoded: list[Decoded], step: Step) -> None:
        """Answer requests that hold no init; in a cluster, the parts owned elsewhere are sent
        on first, and other nodes' replies settle the parts they answer."""
        if not decoded:
            return
        if self.forwarding is None:
            local: Sequence[Request] = decoded  # type: ignore[assignment]  # peer replies come only in a cluster
        else:
            local, forwarded, completed = self.forwarding.route_batch(decoded)
            step.forwarded.extend(forwarded)
            step.held.extend(_held(reply, commit) for reply, commit in completed)
        answers = self._answers(local)
        for request, (body, commit) in zip(local, answers, strict=True):
            reply = None if body is None else self._reply(request, body)
            if self.forwarding is not None:  # the part of a split request answers into its client's reply
                if (done := self.forwarding.settle_local(request, reply, commit)) is not None:
                    step.held.append(_held(*done))
            elif reply is not None:
                step.held.append(_held(reply, commit))

    def _answers(self, requests: Sequence[Request]) -> list[tuple[protocol.Reply | None, int]]:
        """Each request's reply body (None: nobody to answer) and the commit it waits for."""
        storage = self.storage
        if self.node_id is None or storage is None:
            return [(self._refusal(request) if isinstance(request, protocol.Rejected) else
                     _error(request, ErrorCode.TEMPORARILY_UNAVAILABLE, "node not initialised yet: send init first"), 0)
                    for request in requests]
        stored = [request for request in requests if type(request) is protocol.Envelope]
        if len(stored) == len(requests):  # no line was refused: the usual batch
            return self._applied(storage, stored)  # type: ignore[return-value]  # a list of its subtype
        applied = iter(self._applied(storage, stored))
        return [(self._refusal(request), 0) if isinstance(request, protocol.Rejected) else next(applied)
                for request in requests]

    def _applied(self, storage: Storage, requests: list[protocol.Envelope]) -> list[tuple[protocol.Reply, int]]:
        """The answers of requests to the log, in transactions of at most --max-batch requests."""
        if not self.max_batch or len(requests) <= self.max_batch:
            return self._apply_one(storage, requests)
        return [answer for start in range(0, len(requests), self.max_batch)
                for answer in self._apply_one(storage, requests[start:start + self.max_batch])]

    def _apply_one(self, storage: Storage, requests: list[protocol.Envelope]) -> list[tuple[protocol.Reply, int]]:
        if storage.untrusted:  # a COMMIT or sync of this read failed: apply nothing more
            return [(_error(request, ErrorCode.TEMPORARILY_UNAVAILABLE,
                            "not applied: the node is stopping after a failed COMMIT or sync"), 0) for request in requests]
        return batch.apply(storage, requests, self.poll_limits, self._unsynced)

    def _refusal(self, request: protocol.Rejected) -> protocol.Reply | None:
        if request.src is None:
            log.warning("skipped a line that is not a request: %s", request.text)
            return None
        log.info("rejected a request from %s: %s", request.src, request.text)
        return protocol.Error(in_reply_to=request.msg_id, code=request.code, text=request.text)

    # --- init -----------------------------------------------------------------------------

    def _init(self, body: protocol.Init) -> protocol.InitOk | protocol.Error:
        if self.storage is None:
            try:
                self.log_file.open(body.node_id)
            except (UnusableDatabase, StorageError) as refusal:
                log.error("refusing to start: %s", refusal)
                self.refused = True
                return protocol.Error(in_reply_to=body.msg_id, code=ErrorCode.CRASH, text=f"refusing to start: {refusal}")
        self.node_id = body.node_id
        if len(set(body.node_ids)) > 1 or self.forwarding is not None:
            members = cluster.Cluster(body.node_id, body.node_ids)
            if self.forwarding is None:
                self.forwarding = cluster.Forwarding(members, self.forward_timeout)
            else:  # parts in flight are still answered through the same table
                self.forwarding.cluster = members
        log.info("initialised as %s (cluster %s)", body.node_id, ",".join(body.node_ids))
        return protocol.InitOk(in_reply_to=body.msg_id)

    # --- replies --------------------------------------------------------------------------

    def expire(self, now: float) -> list[Held]:
        """The replies of requests whose parts sent on were not answered by `now`."""
        if self.forwarding is None:
            return []
        return [_held(reply, commit) for reply, commit in self.forwarding.expire(now)]

    def abandon_forwarded(self) -> list[Held]:
        """The replies of every request still waiting for other nodes: no reply can come now."""
        if self.forwarding is None:
            return []
        return [_held(reply, commit) for reply, commit in self.forwarding.abandon("the node stopped first")]

    def next_deadline(self) -> float | None:
        """When the oldest part sent on times out (monotonic seconds), if any is in flight."""
        return self.forwarding.next_deadline() if self.forwarding is not None else None

    def _reply(self, request: Request, body: protocol.Reply) -> protocol.Outgoing:
        src = request.src
        assert src is not None  # a request nobody can be answered about has no reply
        return protocol.Outgoing(src=self.node_id or request.dest or "", dest=src, body=body)


def _held(reply: protocol.Outgoing, commit: int) -> Held:
    """A reply waiting for `commit`; if that commit's sync fails, the indefinite 13 goes
    instead, since whether what the reply reports is on disk is unknown."""
    if not commit:
        return Held(0, reply)
    lost = protocol.Error(in_reply_to=reply.body.in_reply_to, code=ErrorCode.CRASH, text="sync failed, outcome unknown")
    return Held(commit, reply, protocol.Outgoing(src=reply.src, dest=reply.dest, body=lost))


def _error(request: protocol.Envelope, code: ErrorCode, text: str) -> protocol.Error:
    return protocol.Error(in_reply_to=request.body.msg_id, code=code, text=text)
