"""The node's core, with no file, thread, pipe or clock of its own: a batch of input lines and the
time in; each reply with the commit it waits for, and the messages to send other nodes, out."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

from kafka_node import batch, cluster, decoding, errors, framing, protocol
from kafka_node.errors import Failure, NothingApplied, OutcomeUnknown
from kafka_node.outbox import Held
from kafka_node.replication.placement import Placement
from kafka_node.replication.shell import Replication
from kafka_node.replication.sqlite_store import SqliteStore
from kafka_node.replication.timing import Timing
from kafka_node.rpcs import Answer, Membership, PollLimits, Written, rpc_of
from kafka_node.storage import Storage, StorageError, UnusableDatabase
from kafka_node.unsynced import PartitionedUnsynced, Unsynced
from kafka_node.wire import ReplicaEnvelope, Sent

logger = logging.getLogger(__name__)

Request = protocol.Envelope | protocol.Rejected
Decoded = Request | protocol.PeerReplyEnvelope | ReplicaEnvelope

#: Gives the open log of the node with this id (the runner opens it, at start-up or now);
#: raises UnusableDatabase or StorageError if it cannot.
StorageFor = Callable[[str], Storage]


class Step(NamedTuple):
    """What one batch of input gives: replies for the outbox, messages to send other nodes now
    (requests sent on, replicas' messages, calls to lin-kv), and the log if this batch's init
    opened it (the runner then listens to its syncs)."""

    held: list[Held]
    forwarded: list[protocol.Forwarded | Sent]
    opened: Storage | None = None


class ReplicationSettings(NamedTuple):
    """How many replicas each key has on several nodes, how many must hold a write, and how long
    a partition's preferred replica stays in sync before it takes its lead back (0: never)."""

    factor: int = 3
    min_insync: int = 2
    rebalance: float = Timing.rebalance


class Node:
    """One kafka-node serving Maelstrom requests against the log `storage_for` gives at init."""

    def __init__(self, storage_for: StorageFor, poll_limits: PollLimits | None = None, max_batch: int | None = None,
                 max_line_bytes: int = framing.DEFAULT_MAX_LINE_BYTES, forward_timeout: float = cluster.FORWARD_TIMEOUT,
                 replication: ReplicationSettings | None = None, timing: Timing | None = None) -> None:
        self.storage_for = storage_for
        self.settings = replication or ReplicationSettings()
        self.timing = timing or Timing(forward=forward_timeout, rebalance=self.settings.rebalance or math.inf)
        self.poll_limits = poll_limits or PollLimits()
        self.max_batch = max_batch
        self.max_line_bytes = max_line_bytes
        self.forward_timeout = forward_timeout
        self.node_id: str | None = None
        self.storage: Storage | None = None
        self.refused = False  # init could not open the log: stop, exit status 2
        # Once init names several nodes: the parts of requests owned elsewhere, in flight.
        self.forwarding: cluster.Forwarding | None = None
        # Once init names several nodes and each key has several replicas: this node's part in that.
        self.replication: Replication | None = None
        self._unsynced: Unsynced | PartitionedUnsynced = Unsynced()
        self._read_at = 0.0  # when input was last read

    @property
    def peers(self) -> frozenset[str]:
        """The other nodes of the cluster (none before init, or alone)."""
        return self.forwarding.cluster.peers if self.forwarding is not None else frozenset()

    @property
    def stopping(self) -> bool:
        """Whether serving must end after this batch: init refused the log, or the log's file
        can no longer be trusted (a failed COMMIT or sync)."""
        return self.refused or (self.storage is not None and self.storage.untrusted)

    # --- one batch ----------------------------------------------------------------------

    def receive(self, lines: Sequence[framing.Line | framing.Oversized], now: float) -> Step:
        """Answer every request of a batch at time `now`: its writes in one transaction,
        committed before this returns (the replies wait in the outbox for it to be durable).

        An init is answered on its own, between the requests before it and those after it,
        since it may open the log and make the node part of a cluster."""
        self._read_at = now
        decoded = [message for line in lines if isinstance(line, framing.Oversized) or (line and not line.isspace())
                   for message in self._decode(line)]
        had_storage = self.storage
        step = Step([], [])
        after_init = 0
        for at, request in enumerate(decoded):
            if type(request) is protocol.Envelope and (membership := rpc_of(request.body).membership(request.body)):
                self._answer(decoded[after_init:at], step, now)
                step.held.append(self._held(request, self._init(request.body.msg_id, membership, now), 0))
                after_init = at + 1
        self._answer(decoded[after_init:] if after_init else decoded, step, now)
        self._drain(step)
        return step._replace(opened=self.storage) if self.storage is not had_storage else step

    def _decode(self, line: framing.Line | framing.Oversized) -> list[Decoded]:
        """The messages of a line: one, or each of another node's bundle."""
        if isinstance(line, framing.Oversized):
            logger.warning("skipped a line longer than %d bytes", self.max_line_bytes)
            return [decoding.refuse_oversized(line.head, self.max_line_bytes)]
        if self.forwarding is None:
            return decoding.decode_unbundled(line)  # type: ignore[return-value]  # a list of its subtypes
        return decoding.decode_in_cluster(line)

    def _answer(self, decoded: list[Decoded], step: Step, now: float) -> None:
        """Answer requests that hold no init; in a cluster, the parts owned elsewhere are sent
        on first, and other nodes' replies settle the parts they answer."""
        if not decoded:
            return
        if self.replication is not None:  # replicas' messages first: they may change who leads
            decoded = self.replication.take_own(decoded, now)
        forwarding = self.forwarding
        held: list[Held] = []
        if forwarding is None:
            local: Sequence[Request] = decoded  # type: ignore[assignment]  # peer replies come only in a cluster
        else:
            local, forwarded, completed, unroutable = forwarding.route_batch(decoded, now)  # type: ignore[arg-type]
            step.forwarded.extend(forwarded)
            held.extend(completed)
            for unrouted, failure in unroutable:
                if not (isinstance(failure, NothingApplied) and self.replication is not None
                        and self.replication.waiting.wait(unrouted, now)):
                    held.append(self._held(unrouted, failure, 0))
        for request, answer in zip(local, self._answers(local, now), strict=True):
            if answer is None:  # a line that names nobody to answer, or a request waiting for a leader
                continue
            if forwarding is not None and type(request) is protocol.Envelope and forwarding.is_part(request):
                if (done := forwarding.settle_local(request, *answer)) is not None:
                    held.append(done)
            else:
                held.append(self._held(request, *answer))
        if self.replication is None:
            step.held.extend(held)
        else:  # what waits for a commit waits for the in-sync sets to hold it too
            step.held.extend(self.replication.hold(held))

    def _drain(self, step: Step) -> None:
        """The one place replication's output enters a step: messages to send, followers'
        answers and the replies the in-sync sets released (or gave up on); and the parts sent on
        to a node whose lead moved to another, answered at once."""
        replication = self.replication
        if replication is None:
            return
        out = replication.ready()
        step.forwarded.extend(out.send)
        step.held.extend(out.held)
        if self.forwarding is not None:
            for former, pid in out.moved:
                step.held.extend(self.forwarding.lead_moved(former, functools.partial(replication.placement.holds, pid)))

    def _answers(self, requests: Sequence[Request], now: float) -> list[Answer | None]:
        """Each request's answer (None: nobody to answer, or it waits for a leader)."""
        storage = self.storage
        if self.node_id is None or storage is None:
            return [self._refusal(request) if isinstance(request, protocol.Rejected) else
                    Answer(NothingApplied("node not initialised yet: send init first"), 0)
                    for request in requests]
        if self.replication is not None:
            return self._answers_led(requests, storage, now)
        stored = [request for request in requests if type(request) is protocol.Envelope]
        if len(stored) == len(requests):  # no line was refused: the usual batch
            return self._applied(storage, stored)  # type: ignore[return-value]  # a list of its subtype
        applied = iter(self._applied(storage, stored))
        return [self._refusal(request) if isinstance(request, protocol.Rejected) else next(applied)
                for request in requests]

    def _answers_led(self, requests: Sequence[Request], storage: Storage, now: float) -> list[Answer | None]:
        """With replicas: a request is applied only by the leader of its keys' partitions (in
        sync enough to write, sure enough it still leads to read); what it writes is stamped
        with its batch, and sent to followers."""
        replication = self.replication
        forwarding = self.forwarding
        assert replication is not None and forwarding is not None
        refused: dict[int, Answer | None] = {}
        for at, request in enumerate(requests):
            if type(request) is protocol.Envelope:
                rpc = rpc_of(request.body)
                if (reason := replication.refusal(rpc.keys(request.body), rpc.writes, storage.durable, now)) is not None:
                    part = forwarding.is_part(request)  # a part is answered in its request's reply
                    waits = not part and replication.waiting.wait(request, now, forwarding.cluster.is_member(request.src))
                    refused[at] = None if waits else Answer(NothingApplied(f"not applied: {reason}"), 0)
        stored = [r for at, r in enumerate(requests) if type(r) is protocol.Envelope and at not in refused]
        applied_answers: list[Answer] = []
        size = self.max_batch or len(stored) or 1
        for start in range(0, len(stored), size):  # one transaction each: each is a batch of its own
            chunk = stored[start:start + size]
            storage.log.stamp = replication.stamp
            try:
                answers = self._applied(storage, chunk)
            finally:
                storage.log.stamp = None
            for commit, written in _writes_by_commit(chunk, answers).items():
                replication.wrote(commit, written.sent, written.committed, now)
            applied_answers += answers
        applied = iter(applied_answers)
        return [refused[at] if at in refused else self._refusal(request) if isinstance(request, protocol.Rejected)
                else next(applied) for at, request in enumerate(requests)]

    def _applied(self, storage: Storage, requests: list[protocol.Envelope]) -> list[Answer]:
        """The answers of requests to the log, in transactions of at most --max-batch requests;
        none once the file is untrusted (a COMMIT or sync of this read failed)."""
        answers: list[Answer] = []
        size = self.max_batch or len(requests) or 1
        for start in range(0, len(requests), size):
            chunk = requests[start:start + size]
            if storage.untrusted:
                stopping = NothingApplied("not applied: the node is stopping after a failed COMMIT or sync")
                answers += [Answer(stopping, 0)] * len(chunk)
            else:
                answers += batch.apply(storage, chunk, self.poll_limits, self._unsynced)
        return answers

    def _refusal(self, request: protocol.Rejected) -> Answer | None:
        if request.src is None:
            logger.warning("skipped a line that is not a request: %s", request.text)
            return None
        logger.info("rejected a request from %s: %s", request.src, request.text)
        return Answer(protocol.Error(in_reply_to=request.msg_id, code=request.code, text=request.text), 0)

    # --- init -----------------------------------------------------------------------------

    def _init(self, msg_id: int | None, membership: Membership, now: float) -> protocol.Reply | Failure:
        if self.storage is None:
            try:
                self.storage = self.storage_for(membership.node_id)
            except (UnusableDatabase, StorageError) as refusal:
                logger.error("refusing to start: %s", refusal)
                self.refused = True
                return OutcomeUnknown(f"refusing to start: {refusal}")
        self.node_id = membership.node_id
        if len(set(membership.node_ids)) > 1 or self.forwarding is not None:
            members = cluster.Cluster(membership.node_id, membership.node_ids)
            factor = min(self.settings.factor, len(members.node_ids))
            if factor > 1 and self.replication is None and membership.node_id in members.node_ids:
                self._replicate(membership.node_id, Placement(members.node_ids, factor,
                                                              min(self.settings.min_insync, factor)), now)
            if self.replication is not None:
                members.leader_of = self.replication.leader_of
            if self.forwarding is None:
                self.forwarding = cluster.Forwarding(members, self.forward_timeout)
            else:  # parts in flight are still answered through the same table
                self.forwarding.cluster = members
        logger.info("initialised as %s (cluster %s)", membership.node_id, ",".join(membership.node_ids))
        return protocol.InitOk(in_reply_to=msg_id)

    def _replicate(self, node_id: str, placement: Placement, now: float) -> None:
        """Become a replica of the partitions `placement` gives this node."""
        assert self.storage is not None
        for violation in self.timing.violations():
            logger.warning("timeouts: %s does not hold", violation)
        self.replication = Replication(node_id, placement, SqliteStore(self.storage, placement), self.timing, now)
        self._unsynced = PartitionedUnsynced(placement.partition, self.replication.hw_of)
        self.replication.start(now)

    # --- time -----------------------------------------------------------------------------

    def expire(self, now: float) -> list[Held]:
        """The replies of requests whose parts sent on were not answered by `now`."""
        return self.forwarding.expire(now) if self.forwarding is not None else []

    def tick(self, now: float, idle: bool = True) -> Step:
        """What replication's timers give at `now`: heartbeats, catch-ups, elections, changes
        to in-sync sets, the requests waiting for a leader tried again, and the replies whose
        commit the in-sync sets now hold (or gave up on). `idle`: no input waits to be read, so
        silence counts up to `now` (else only up to the last read)."""
        step = Step([], [])
        replication = self.replication
        if replication is not None:
            replication.tick(now, now if idle else self._read_at)
            if waiting := replication.waiting.take():
                self._answer(waiting, step, now)
                replication.waiting.tried(waiting)
            self._drain(step)
        return step

    def abandon_forwarded(self) -> list[Held]:
        """The replies of every request still waiting for other nodes: no reply can come now."""
        return self.forwarding.abandon("the node stopped first") if self.forwarding is not None else []

    def next_deadline(self) -> float | None:
        """When the oldest part sent on times out, or replication's timers are next due (in the
        time `receive` is given), if either is."""
        forward = self.forwarding.next_deadline() if self.forwarding is not None else None
        if self.replication is None:
            return forward
        tick = self.replication.next_deadline()
        return tick if forward is None else min(forward, tick)

    def _held(self, request: Request, reply: protocol.Reply | Failure, commit: int) -> Held:
        """The reply to `request`, addressed, waiting for `commit`."""
        src = request.src
        assert src is not None  # a request nobody can be answered about has no reply
        msg_id = request.msg_id if isinstance(request, protocol.Rejected) else request.body.msg_id
        body = errors.error_reply(msg_id, reply) if isinstance(reply, Failure) else reply
        return Held(protocol.Outgoing(src=self.node_id or request.dest or "", dest=src, body=body), commit)


def _writes_by_commit(requests: list[protocol.Envelope], answers: list[Answer]) -> dict[int, Written]:
    """What each commit's applied writes changed."""
    writes: dict[int, Written] = {}
    for request, answer in zip(requests, answers, strict=True):
        rpc = rpc_of(request.body)
        if rpc.writes and answer.commit and not isinstance(answer.reply, Failure):
            rpc.remember(writes.setdefault(answer.commit, Written()), request.body, answer.reply)
    return writes
