"""Several nodes, one owner per key: which node owns a key, how a batch's requests naming keys
of other owners are cut into parts and sent on, and the table of parts in flight, from which each
client's reply is assembled once every part has answered or its deadline has passed."""

from __future__ import annotations

import itertools
import logging
import random
import time
import zlib
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import msgspec

from kafka_node import protocol
from kafka_node.protocol import ErrorCode

log = logging.getLogger(__name__)

#: Seconds a forwarded part may take before it counts as unanswered: longer than the owner's
#: own worst case (its 2 s busy timeout, after which it answers a definite 11), shorter than
#: Maelstrom's 5 s RPC timeout, so that the client hears an error rather than nothing.
FORWARD_TIMEOUT = 3.0

#: Request types that change the log: a part of one that went unanswered may have been applied.
_WRITES = (protocol.Send, protocol.CommitOffsets)

#: A client's reply, and the commit of this node's that must be durable before it may leave
#: (that of the part applied here, if any; 0: none).
Completed = tuple[protocol.Outgoing, int]


def owner_of(key: str, node_ids: Sequence[str]) -> str:
    """The node owning `key` among `node_ids` (sorted): the same answer on every node and in
    every process, since CRC-32 of the key's UTF-8 bytes depends on nothing else."""
    return node_ids[zlib.crc32(key.encode("utf-8", "surrogatepass")) % len(node_ids)]


class Cluster:
    """The nodes named by `init`, and which of them owns each key."""

    def __init__(self, node_id: str, node_ids: Iterable[str]) -> None:
        self.node_id = node_id
        self.node_ids = sorted(set(node_ids))
        self._members = frozenset(self.node_ids)
        if node_id not in self._members:
            log.warning("init names %s, which is not among its node_ids %s: every key is another node's",
                        node_id, ",".join(self.node_ids))

    def is_member(self, node_id: str) -> bool:
        return node_id in self._members

    def owner(self, key: str) -> str:
        return owner_of(key, self.node_ids)

    def parts(self, body: protocol.Request) -> dict[str, protocol.Request]:
        """`body` cut into one request per owner of the keys it names (each keeping the
        original msg_id); {} for a request that names no key."""
        if type(body) is protocol.Send:
            return {self.owner(body.key): body}
        if isinstance(body, protocol.Poll | protocol.CommitOffsets):
            offsets: dict[str, dict[str, int]] = {}
            for key, offset in body.offsets.items():
                offsets.setdefault(self.owner(key), {})[key] = offset
            if len(offsets) == 1:
                return dict.fromkeys(offsets, body)
            return {owner: type(body)(offsets=part, msg_id=body.msg_id) for owner, part in offsets.items()}
        if isinstance(body, protocol.ListCommittedOffsets):
            keys: dict[str, list[str]] = {}
            for key in body.keys:
                keys.setdefault(self.owner(key), []).append(key)
            if len(keys) == 1:
                return dict.fromkeys(keys, body)
            return {owner: protocol.ListCommittedOffsets(keys=part, msg_id=body.msg_id) for owner, part in keys.items()}
        return {}


class _Failed(NamedTuple):
    """A part that failed: the error code its owner gave (or ours for no reply), and why."""

    code: int
    text: str


#: What one part gave: a send's offset, a poll's messages as JSON text, nothing (a commit),
#: committed offsets (a listing), or a failure.
Answer = int | bytes | None | dict[str, int] | _Failed


def _is_definite(code: int) -> bool:
    """Whether an error code promises that nothing was applied (an unknown code does not)."""
    return code in ErrorCode.__members__.values() and ErrorCode(code).is_definite()


class _Gather:
    """A client's request cut into parts, one per owner: the answers so far, and the
    client's reply once every part has answered."""

    __slots__ = ("answers", "asked", "commit", "request")

    def __init__(self, request: protocol.Envelope, asked: dict[str, protocol.Request]) -> None:
        self.request = request
        self.asked = asked  # owner -> the part it was asked
        self.answers: dict[str, Answer] = {}  # owner -> what its part gave
        self.commit = 0  # the commit holding the part applied here

    def settle(self, owner: str, answer: Answer, node_id: str) -> Completed | None:
        """Record one part's answer; the client's reply if it was the last one awaited."""
        self.answers[owner] = answer
        if len(self.answers) < len(self.asked):
            return None
        return protocol.Outgoing(src=node_id, dest=self.request.src, body=self._reply()), self.commit

    def _reply(self) -> protocol.Reply:
        body = self.request.body
        failed = [(owner, a) for owner, a in self.answers.items() if isinstance(a, _Failed)]
        if failed:
            return protocol.Error(in_reply_to=body.msg_id, **self._failure(failed)._asdict())
        answers = list(self.answers.values())
        if type(body) is protocol.Send:
            offset = answers[0]
            assert isinstance(offset, int)  # a send is one part, and only its send_ok gives an int
            return protocol.SendOk(in_reply_to=body.msg_id, offset=offset)
        if type(body) is protocol.Poll:
            msgs = _join_objects(a for a in answers if isinstance(a, bytes))
            return protocol.PollOk(in_reply_to=body.msg_id, msgs=protocol.json_text(msgs))
        if type(body) is protocol.CommitOffsets:
            return protocol.CommitOffsetsOk(in_reply_to=body.msg_id)
        offsets: dict[str, int] = {}
        for part in answers:
            if isinstance(part, dict):
                offsets.update(part)
        return protocol.ListCommittedOffsetsOk(in_reply_to=body.msg_id, offsets=offsets)

    def _failure(self, failed: list[tuple[str, _Failed]]) -> _Failed:
        """The client's error when parts failed. A read has no effect, so it fails with a
        definite 11 whatever happened; a write fails definitely only if every part did (each
        with a definite code), else it may have been applied in part: 13."""
        text = "; ".join(f"{owner}: {failure.text} (code {failure.code})" for owner, failure in failed)
        if not isinstance(self.request.body, _WRITES):
            return _Failed(ErrorCode.TEMPORARILY_UNAVAILABLE, f"nothing read: {text}")
        if len(failed) == len(self.asked) and all(_is_definite(f.code) for _, f in failed):
            return _Failed(failed[0][1].code, text if len(failed) > 1 else failed[0][1].text)
        if len(failed) < len(self.asked):
            text = f"applied by {', '.join(sorted(set(self.asked) - {o for o, _ in failed}))} only; {text}"
        return _Failed(ErrorCode.CRASH, f"outcome unknown: {text}")


def _join_objects(texts: Iterable[bytes]) -> bytes:
    """One JSON object holding the members of several (whose keys do not overlap)."""
    members = [text[1:-1] for text in texts if len(text) > 2]
    return b"{" + b",".join(members) + b"}"


_encoder = msgspec.json.Encoder()


class _InFlight(NamedTuple):
    deadline: float
    owner: str
    gather: _Gather


class Forwarding:
    """The parts of clients' requests in flight: those sent on to their owners, keyed by the
    msg_id each was sent with and answered when the owner's reply comes (or with an error
    when its deadline passes), and those applied here, answered when this node's reply to
    them is released after its durable COMMIT.

    Used by the serve loop's thread alone: a part applied here is settled as soon as it is
    applied, and the client's reply it completes waits, in the outbox, for that part's commit.
    """

    def __init__(self, cluster: Cluster, timeout: float = FORWARD_TIMEOUT) -> None:
        self.cluster = cluster
        self.timeout = timeout
        # Numbered from a random start, so that a late reply to an earlier incarnation of this
        # node (restarted meanwhile) is not taken for the reply to one of this one's parts.
        self._msg_ids = itertools.count(random.getrandbits(48) + 1)
        self._remote: dict[int, _InFlight] = {}  # msg_id -> part; deadlines ascend in this order
        self._local: dict[int, tuple[protocol.Envelope, _Gather]] = {}  # id(local part) -> (it, its gather)

    def route(self, request: protocol.Envelope) -> tuple[protocol.Envelope | None, list[protocol.Forwarded]]:
        """The part of a client's request to apply here (the request itself when this node
        owns every key it names; None when it owns none) and the parts to send on."""
        node_id = self.cluster.node_id
        asked = self.cluster.parts(request.body)
        if asked.keys() <= {node_id}:
            return request, []
        gather = _Gather(request, asked)
        deadline = time.monotonic() + self.timeout
        local: protocol.Envelope | None = None
        forwarded = []
        for owner, part in asked.items():
            if owner == node_id:
                local = protocol.Envelope(request.src, request.dest, part)
                self._local[id(local)] = (local, gather)
                continue
            msg_id = next(self._msg_ids)
            self._remote[msg_id] = _InFlight(deadline, owner, gather)
            forwarded.append(protocol.Forwarded(src=node_id, dest=owner, body=_numbered(part, msg_id)))
        return local, forwarded

    def route_batch(self, decoded: Sequence[protocol.Envelope | protocol.Rejected | protocol.PeerReplyEnvelope]) -> (
            tuple[list[protocol.Envelope | protocol.Rejected], list[protocol.Forwarded], list[Completed]]):
        """What of a batch to apply here, in order: requests from other nodes, and the parts of
        clients' requests this node owns; the parts owned elsewhere, to send on at once; and
        the clients' replies that the other nodes' replies in the batch completed."""
        local: list[protocol.Envelope | protocol.Rejected] = []
        forwarded: list[protocol.Forwarded] = []
        completed: list[Completed] = []
        for request in decoded:
            if isinstance(request, protocol.PeerReplyEnvelope):
                if not self.cluster.is_member(request.src):
                    log.info("ignored a %s from %s, which is not a node of the cluster",
                             request.body.__struct_config__.tag, request.src)
                elif (done := self.settle_remote(request.src, request.body)) is not None:
                    completed.append(done)
            elif isinstance(request, protocol.Rejected) or self.cluster.is_member(request.src):
                local.append(request)  # a peer's request is for keys this node owns
            else:
                try:
                    part, sent = self.route(request)
                except Exception as error:  # never foreseen: answer it, never crash
                    log.exception("unexpected failure while forwarding a request")
                    local.append(protocol.Rejected(request.src, request.dest, request.body.msg_id, ErrorCode.CRASH,
                                                   f"internal error: {error!r}"))
                    continue
                forwarded += sent
                if part is not None:
                    local.append(part)
        return local, forwarded, completed

    def settle_local(self, request: protocol.Envelope | protocol.Rejected, reply: protocol.Outgoing | None,
                     commit: int) -> Completed | None:
        """This node's reply to `request` (with the commit it waits for), or, if `request` is
        the part of a split request applied here, the client's reply if every other part has
        answered too (else None)."""
        entry = self._local.pop(id(request), None)
        if entry is None or entry[0] is not request:
            return None if reply is None else (reply, commit)
        gather = entry[1]
        gather.commit = max(gather.commit, commit)
        answer: Answer = _Failed(ErrorCode.CRASH, "no reply") if reply is None else _local_payload(reply.body)
        return gather.settle(self.cluster.node_id, answer, self.cluster.node_id)

    def settle_remote(self, src: str, reply: protocol.PeerReply) -> Completed | None:
        """Take a reply from another node; the client's reply if it completes a request."""
        part = self._remote.get(reply.in_reply_to)
        if part is None or part.owner != src:
            log.info("ignored a %s from %s that answers no part in flight (in_reply_to %d): late or not asked for",
                     reply.__struct_config__.tag, src, reply.in_reply_to)
            return None
        del self._remote[reply.in_reply_to]
        return part.gather.settle(src, _remote_payload(part.gather.asked[src], reply, src), self.cluster.node_id)

    def next_deadline(self) -> float | None:
        """When the oldest part sent on times out (monotonic seconds), if any is in flight."""
        oldest = next(iter(self._remote.values()), None)
        return oldest.deadline if oldest else None

    def expire(self, now: float) -> list[Completed]:
        """Fail every part sent on whose deadline has passed; the clients' replies completed."""
        replies = []
        while self._remote:
            msg_id, part = next(iter(self._remote.items()))
            if part.deadline > now:
                break
            del self._remote[msg_id]
            failure = _Failed(ErrorCode.CRASH, f"no reply from {part.owner} within {self.timeout:g} s")
            if (reply := part.gather.settle(part.owner, failure, self.cluster.node_id)) is not None:
                replies.append(reply)
        return replies

    def abandon(self, reason: str) -> list[Completed]:
        """Fail every part sent on at once (the node is stopping: no reply can come)."""
        replies = []
        for part in self._remote.values():
            if (reply := part.gather.settle(part.owner, _Failed(ErrorCode.CRASH, reason), self.cluster.node_id)):
                replies.append(reply)
        self._remote.clear()
        return replies


def _numbered(part: protocol.Request, msg_id: int) -> protocol.Request:
    """A copy of `part` carrying `msg_id`, as it is sent on (a message's carriage returns
    made spaces, as the node stores them, so that every reader still sees one line)."""
    if type(part) is protocol.Send:
        return protocol.Send(key=part.key, msg=protocol.json_text(protocol.message_text(part).encode()), msg_id=msg_id)
    return msgspec.structs.replace(part, msg_id=msg_id)


def _local_payload(body: protocol.Reply) -> Answer:
    """What this node's own reply to a local part gives the client's reply."""
    if isinstance(body, protocol.Error):
        return _Failed(body.code, body.text)
    if isinstance(body, protocol.PollOk):
        return bytes(body.msgs)
    if isinstance(body, protocol.ListCommittedOffsetsOk):
        return body.offsets
    return None


def _remote_payload(asked: protocol.Request, reply: protocol.PeerReply, src: str) -> Answer:
    """What another node's reply gives the client's reply: only keys that part asked about
    are kept, and a reply of the wrong type counts as a failure whose outcome is unknown."""
    if isinstance(reply, protocol.PeerError):
        return _Failed(reply.code, reply.text)
    if type(asked) is protocol.Send and type(reply) is protocol.PeerSendOk:
        return reply.offset
    if type(asked) is protocol.Poll and type(reply) is protocol.PeerPollOk:
        msgs = {key: messages for key, messages in reply.msgs.items() if key in asked.offsets}
        if len(msgs) < len(reply.msgs):
            log.warning("%s answered a poll with keys it was not asked about; they were left out", src)
        return _encoder.encode(msgs)
    if type(asked) is protocol.CommitOffsets and type(reply) is protocol.PeerCommitOffsetsOk:
        return None
    if type(asked) is protocol.ListCommittedOffsets and type(reply) is protocol.PeerListCommittedOffsetsOk:
        keys = set(asked.keys)
        return {key: offset for key, offset in reply.offsets.items() if key in keys}
    tag = asked.__struct_config__.tag
    log.warning("%s answered a %s with a %s", src, tag, reply.__struct_config__.tag)
    return _Failed(ErrorCode.CRASH, f"answered a {tag} with a {reply.__struct_config__.tag}")
