"""Several nodes, one owner per key: which node owns a key, how a batch's requests naming keys
of other owners are cut into parts and sent on, and the table of parts in flight, from which each
client's reply is assembled once every part has answered or its deadline has passed."""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from kafka_node import errors, protocol
from kafka_node.errors import Failure, NothingApplied, OutcomeUnknown, RefusedElsewhere
from kafka_node.outbox import Held
from kafka_node.replication.placement import partition_of
from kafka_node.rpcs import MISMATCH, Payload, rpc_of

logger = logging.getLogger(__name__)

#: Seconds a forwarded part may take before it counts as unanswered: longer than the owner's
#: own worst case (its 2 s busy timeout, after which it answers a definite 11), shorter than
#: Maelstrom's 5 s RPC timeout, so that the client hears an error rather than nothing.
FORWARD_TIMEOUT = 3.0


def owner_of(key: str, node_ids: Sequence[str]) -> str:
    """The node owning `key` among `node_ids` (sorted): the first replica of its partition."""
    return node_ids[partition_of(key, len(node_ids))]


class Cluster:
    """The nodes named by `init`, and which of them owns each key: with one copy per key, the
    node `owner_of` names; with replicas, the leader of the key's partition (`leader_of`)."""

    def __init__(self, node_id: str, node_ids: Iterable[str]) -> None:
        self.node_id = node_id
        self.node_ids = sorted(set(node_ids))
        self.leader_of: Callable[[str], str | None] | None = None
        self._members = frozenset(self.node_ids)
        #: The other nodes: what this node writes to each at once goes in one bundle.
        self.peers = self._members - {node_id}
        if node_id not in self._members:
            logger.warning("init names %s, which is not among its node_ids %s: every key is another node's",
                           node_id, ",".join(self.node_ids))

    def is_member(self, node_id: str) -> bool:
        return node_id in self._members

    def owner(self, key: str) -> str:
        """The node that applies requests naming `key` ("" while its partition has no leader known)."""
        if self.leader_of is not None:
            return self.leader_of(key) or ""
        return owner_of(key, self.node_ids)

    def parts(self, body: protocol.Request) -> dict[str, protocol.Request]:
        """`body` cut into one request per owner of the keys it names (each keeping the
        original msg_id); {} for a request that names no key."""
        rpc = rpc_of(body)
        keys: dict[str, list[str]] = {}
        for key in rpc.keys(body):
            keys.setdefault(self.owner(key), []).append(key)
        if len(keys) == 1:
            return dict.fromkeys(keys, body)
        return {owner: rpc.part(body, part) for owner, part in keys.items()}


class Unroutable(Exception):
    """A request names a key whose partition has no leader known now: nothing was sent on."""


class Routed(NamedTuple):
    """A batch as routed: what to apply here, in order (requests from other nodes, and the
    parts of clients' requests this node owns); the parts owned elsewhere, to send on at once;
    the clients' replies that other nodes' replies in the batch completed; and the requests
    that could not be routed, with what went wrong."""

    local: list[protocol.Envelope | protocol.Rejected]
    forwarded: list[protocol.Forwarded]
    completed: list[Held]
    unroutable: list[tuple[protocol.Envelope, Failure]]


class _Gather:
    """A client's request cut into parts, one per owner: the answers so far, and the
    client's reply once every part has answered."""

    __slots__ = ("answers", "asked", "commit", "request")

    def __init__(self, request: protocol.Envelope, asked: dict[str, protocol.Request]) -> None:
        self.request = request
        self.asked = asked  # owner -> the part it was asked
        self.answers: dict[str, Payload | Failure] = {}  # owner -> what its part gave
        self.commit = 0  # the commit holding the part applied here

    def settle(self, owner: str, answer: Payload | Failure, node_id: str) -> Held | None:
        """Record one part's answer; the client's reply if it was the last one awaited."""
        self.answers[owner] = answer
        if len(self.answers) < len(self.asked):
            return None
        return Held(protocol.Outgoing(src=node_id, dest=self.request.src, body=self._reply()), self.commit)

    def _reply(self) -> protocol.Reply:
        body = self.request.body
        failed = [(owner, a) for owner, a in self.answers.items() if isinstance(a, Failure)]
        if failed:
            return errors.error_reply(body.msg_id, self._failure(failed))
        payloads: list[Any] = list(self.answers.values())
        return rpc_of(body).join(body, payloads)

    def _failure(self, failed: list[tuple[str, Failure]]) -> Failure:
        """The client's failure when parts failed. A read has no effect, so nothing was applied
        whatever happened; a write failed definitely only if every part did (each definitely),
        passed on as the first owner said it, else it may have been applied in part."""
        text = "; ".join(f"{owner}: {failure.text} (code {errors.code_of(failure)})" for owner, failure in failed)
        if not rpc_of(self.request.body).writes:
            return NothingApplied(f"nothing read: {text}")
        if len(failed) == len(self.asked) and all(errors.is_definite(f) for _, f in failed):
            first = failed[0][1]
            return RefusedElsewhere(errors.code_of(first), text if len(failed) > 1 else first.text)
        if len(failed) < len(self.asked):
            text = f"applied by {', '.join(sorted(set(self.asked) - {o for o, _ in failed}))} only; {text}"
        return OutcomeUnknown(f"outcome unknown: {text}")


class _InFlight:
    __slots__ = ("deadline", "gather", "owner")

    def __init__(self, deadline: float, owner: str, gather: _Gather) -> None:
        self.deadline = deadline
        self.owner = owner
        self.gather = gather


class Forwarding:
    """The parts of clients' requests in flight: those sent on to their owners, keyed by the
    msg_id each was sent with and answered when the owner's reply comes (or with a failure
    when its deadline passes), and those applied here, answered as soon as they are applied
    (the client's reply they complete waits, in the outbox, for that part's commit).

    Time is what the caller says it is (`now`): nothing here reads a clock.
    """

    def __init__(self, cluster: Cluster, timeout: float = FORWARD_TIMEOUT) -> None:
        self.cluster = cluster
        self.timeout = timeout
        # Numbered from a random start, so that a late reply to an earlier incarnation of this
        # node (restarted meanwhile) is not taken for the reply to one of this one's parts.
        self._msg_ids = itertools.count(random.getrandbits(48) + 1)
        self._remote: dict[int, _InFlight] = {}  # msg_id -> part; deadlines ascend in this order
        self._local: dict[int, tuple[protocol.Envelope, _Gather]] = {}  # id(local part) -> (it, its gather)

    def route(self, request: protocol.Envelope, now: float) -> tuple[protocol.Envelope | None, list[protocol.Forwarded]]:
        """The part of a client's request to apply here (the request itself when this node
        owns every key it names; None when it owns none) and the parts to send on."""
        node_id = self.cluster.node_id
        asked = self.cluster.parts(request.body)
        if "" in asked:
            raise Unroutable("no leader is known for a partition of its keys; try again")
        if asked.keys() <= {node_id}:
            return request, []
        gather = _Gather(request, asked)
        deadline = now + self.timeout
        local: protocol.Envelope | None = None
        forwarded = []
        for owner, part in asked.items():
            if owner == node_id:
                local = protocol.Envelope(request.src, request.dest, part)
                self._local[id(local)] = (local, gather)
                continue
            msg_id = next(self._msg_ids)
            self._remote[msg_id] = _InFlight(deadline, owner, gather)
            forwarded.append(protocol.Forwarded(src=node_id, dest=owner, body=rpc_of(part).numbered(part, msg_id)))
        return local, forwarded

    def route_batch(self, decoded: Sequence[protocol.Envelope | protocol.Rejected | protocol.PeerReplyEnvelope],
                    now: float) -> Routed:
        """What of a batch to apply here, and what to send and answer at once (see `Routed`)."""
        local: list[protocol.Envelope | protocol.Rejected] = []
        forwarded: list[protocol.Forwarded] = []
        completed: list[Held] = []
        unroutable: list[tuple[protocol.Envelope, Failure]] = []
        for request in decoded:
            if isinstance(request, protocol.PeerReplyEnvelope):
                if not self.cluster.is_member(request.src):
                    logger.info("ignored a %s from %s, which is not a node of the cluster",
                                request.body.__struct_config__.tag, request.src)
                elif (done := self.settle_remote(request.src, request.body)) is not None:
                    completed.append(done)
            elif isinstance(request, protocol.Rejected) or (self.cluster.is_member(request.src)
                                                             and not self._passes_on(request)):
                local.append(request)  # a peer's request is for keys this node owns
            else:
                try:
                    part, sent = self.route(request, now)
                except Unroutable as error:
                    unroutable.append((request, NothingApplied(f"not applied: {error}")))
                    continue
                except Exception as error:  # never foreseen: answer it, never crash
                    logger.exception("unexpected failure while forwarding a request")
                    unroutable.append((request, errors.unforeseen(error)))
                    continue
                forwarded += sent
                if part is not None:
                    local.append(part)
        return Routed(local, forwarded, completed, unroutable)

    def _passes_on(self, request: protocol.Envelope) -> bool:
        """Whether another node's request is sent on rather than applied (or refused) here:
        with replicas, a node that no longer leads its keys sends it to the leader it knows,
        when that is neither this node nor the one that sent it (the sender's news of a new
        leader may be late; this node's may be newer)."""
        if self.cluster.leader_of is None:
            return False
        owners = self.cluster.parts(request.body).keys()
        return not owners & {self.cluster.node_id, request.src, ""}

    def is_part(self, request: protocol.Envelope | protocol.Rejected) -> bool:
        """Whether `request` is the part of a client's request cut across owners applied here."""
        entry = self._local.get(id(request))
        return entry is not None and entry[0] is request

    def settle_local(self, request: protocol.Envelope, reply: protocol.Reply | Failure, commit: int) -> Held | None:
        """This node's answer to the part `request`; the client's reply if every other part
        has answered too (else None)."""
        part, gather = self._local.pop(id(request))
        gather.commit = max(gather.commit, commit)
        answer = reply if isinstance(reply, Failure) else rpc_of(part.body).payload(reply)
        return gather.settle(self.cluster.node_id, answer, self.cluster.node_id)

    def settle_remote(self, src: str, reply: protocol.PeerReply) -> Held | None:
        """Take a reply from another node; the client's reply if it completes a request."""
        part = self._remote.get(reply.in_reply_to)
        if part is None or part.owner != src:
            logger.info("ignored a %s from %s that answers no part in flight (in_reply_to %d): late or not asked for",
                        reply.__struct_config__.tag, src, reply.in_reply_to)
            return None
        del self._remote[reply.in_reply_to]
        return part.gather.settle(src, _remote_payload(part.gather.asked[src], reply, src), self.cluster.node_id)

    def next_deadline(self) -> float | None:
        """When the oldest part sent on times out (in the caller's time), if any is in flight."""
        oldest = next(iter(self._remote.values()), None)
        return oldest.deadline if oldest else None

    def expire(self, now: float) -> list[Held]:
        """Fail every part sent on whose deadline has passed; the clients' replies completed."""
        replies = []
        while self._remote:
            msg_id, part = next(iter(self._remote.items()))
            if part.deadline > now:
                break
            del self._remote[msg_id]
            failure = OutcomeUnknown(f"no reply from {part.owner} within {self.timeout:g} s")
            if (reply := part.gather.settle(part.owner, failure, self.cluster.node_id)) is not None:
                replies.append(reply)
        return replies

    def lead_moved(self, former: str, belongs: Callable[[str], bool]) -> list[Held]:
        """Answer at once the parts sent on to `former` for keys (those `belongs` accepts) whose
        partition it no longer leads: its reply may never come (it is likely down). A read
        failed with nothing read; a write's outcome is unknown (it may have been applied)."""
        replies = []
        for msg_id, part in list(self._remote.items()):
            asked = part.gather.asked.get(former)
            if part.owner != former or asked is None or not any(map(belongs, rpc_of(asked).keys(asked))):
                continue
            del self._remote[msg_id]
            failure = OutcomeUnknown(f"{former} no longer leads these keys and has not answered")
            if (reply := part.gather.settle(former, failure, self.cluster.node_id)) is not None:
                replies.append(reply)
        return replies

    def abandon(self, reason: str) -> list[Held]:
        """Fail every part sent on at once (the node is stopping: no reply can come)."""
        replies = []
        for part in self._remote.values():
            if (reply := part.gather.settle(part.owner, OutcomeUnknown(reason), self.cluster.node_id)):
                replies.append(reply)
        self._remote.clear()
        return replies


def _remote_payload(asked: protocol.Request, reply: protocol.PeerReply, src: str) -> Payload | Failure:
    """What another node's reply gives the client's reply: only keys that part asked about
    are kept, and a reply of the wrong type counts as a failure whose outcome is unknown."""
    if isinstance(reply, protocol.PeerError):
        return RefusedElsewhere(reply.code, reply.text)
    rpc = rpc_of(asked)
    payload = rpc.peer_payload(asked, reply, src)
    if payload is MISMATCH:
        tag = reply.__struct_config__.tag
        logger.warning("%s answered a %s with a %s", src, rpc.name, tag)
        return OutcomeUnknown(f"answered a {rpc.name} with a {tag}")
    return payload  # type: ignore[return-value]  # not MISMATCH
