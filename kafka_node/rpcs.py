"""The table of RPCs: for each request type one record, saying whether it writes, which keys it
names, how it is cut into parts per owner and joined again, how it is applied to the log, and what its reply holds."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, NamedTuple, Protocol, TypeVar

import msgspec

from kafka_node import protocol
from kafka_node.errors import Failure
from kafka_node.storage.log import Log

logger = logging.getLogger(__name__)

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class PollLimits:
    """How much one `poll_ok` may hold (the command line's --poll-max-* flags)."""

    per_key: int = 100
    messages: int = 100_000
    bytes: int = 4 << 20


class Visibility(Protocol):
    """What a read may see of commits not yet durable, and the commit its reply waits for."""

    def poll(self, keys: Iterable[str]) -> tuple[dict[str, int], int]:
        """The offsets below which each key is read, and the commit the reply waits for."""
        ...

    def listing(self, keys: Iterable[str]) -> int:
        """The commit a listing of these keys waits for (0: none)."""
        ...


@dataclass
class Written:
    """What one transaction wrote: the first offset it gave each key it sent to, and the keys
    whose committed offsets it moved."""

    sent: dict[str, int] = field(default_factory=dict)
    committed: set[str] = field(default_factory=set)


class Answer(NamedTuple):
    """A request's reply body (or what went wrong), and the commit that must be durable
    before it may leave (0: none). Once addressed, the same pair is an `outbox.Held`."""

    reply: protocol.Reply | Failure
    commit: int


class Membership(NamedTuple):
    """What an init tells: this node's id and every node's."""

    node_id: str
    node_ids: list[str]


#: What one part of a request cut across owners gives the client's reply: a send's offset, a
#: poll's messages as JSON text, nothing (a commit), or committed offsets (a listing).
Payload = int | bytes | None | dict[str, int]

#: A peer's reply of a type that does not answer the part it was asked.
MISMATCH = object()

Body = TypeVar("Body", bound=protocol.Request)


class Rpc(Generic[Body]):
    """One request type's record. A read is applied alone and says which commit its reply
    waits for; a write is applied inside the batch's transaction and waits for its COMMIT."""

    request: ClassVar[type]
    #: It changes the log: applied inside a transaction, and a part of it unanswered may have been applied.
    writes: ClassVar[bool] = False
    #: Consecutive requests of this type are applied by one call (and one savepoint).
    in_runs: ClassVar[bool] = False

    @property
    def name(self) -> str:
        return str(self.request.__struct_config__.tag)  # type: ignore[attr-defined]  # a tagged msgspec Struct

    def membership(self, body: Body) -> Membership | None:
        """For an init, what it tells; None for every request to the log."""
        return None

    def keys(self, body: Body) -> Sequence[str]:
        """The keys the request names, in its order (none: it is answered where it arrives)."""
        return ()

    def part(self, body: Body, keys: list[str]) -> Body:
        """The request narrowed to some of its keys, with its own msg_id."""
        return body

    def numbered(self, body: Body, msg_id: int) -> Body:
        """A copy carrying `msg_id`, as it is sent on to another node."""
        return msgspec.structs.replace(body, msg_id=msg_id)

    def write(self, log: Log, bodies: list[Body]) -> list[protocol.Reply]:
        """Apply writes in order, inside the open transaction; each one's reply."""
        raise TypeError(f"{self.name} does not write")

    def remember(self, written: Written, body: Body, reply: protocol.Reply) -> None:
        """Record in `written` what this applied write changed."""

    def read(self, log: Log, body: Body, limits: PollLimits, visibility: Visibility) -> Answer:
        """A read's reply, and the commit it waits for."""
        raise TypeError(f"{self.name} is not a read")

    def payload(self, reply: protocol.Reply) -> Payload:
        """What this node's own successful reply to a part gives the client's reply (a send
        names one key, so it is never cut into parts: it has none)."""
        return None

    def peer_payload(self, asked: Body, reply: protocol.PeerReply, src: str) -> Payload | object:
        """What node `src`'s successful reply to the part `asked` gives (only keys asked
        about are kept), or MISMATCH for a reply of the wrong type."""
        return MISMATCH

    def join(self, body: Body, payloads: list[Payload]) -> protocol.Reply:
        """The client's reply from every part's payload."""
        raise TypeError(f"{self.name} is not cut into parts")


class InitRpc(Rpc[protocol.Init]):
    request = protocol.Init

    def membership(self, body: protocol.Init) -> Membership:
        return Membership(body.node_id, body.node_ids)


class SendRpc(Rpc[protocol.Send]):
    request = protocol.Send
    writes = True
    in_runs = True

    def keys(self, body: protocol.Send) -> Sequence[str]:
        return (body.key,)

    def numbered(self, body: protocol.Send, msg_id: int) -> protocol.Send:
        # the message's carriage returns made spaces, as the node stores them, so every reader sees one line
        return protocol.Send(key=body.key, msg=protocol.json_text(protocol.message_text(body).encode()), msg_id=msg_id)

    def write(self, log: Log, bodies: list[protocol.Send]) -> list[protocol.Reply]:
        offsets = log.append_many([(body.key, protocol.message_text(body)) for body in bodies])
        return [protocol.SendOk(in_reply_to=body.msg_id, offset=offset) for body, offset in zip(bodies, offsets, strict=True)]

    def remember(self, written: Written, body: protocol.Send, reply: protocol.Reply) -> None:
        if type(reply) is protocol.SendOk:
            written.sent.setdefault(body.key, reply.offset)

    def peer_payload(self, asked: protocol.Send, reply: protocol.PeerReply, src: str) -> Payload | object:
        return reply.offset if type(reply) is protocol.PeerSendOk else MISMATCH

    def join(self, body: protocol.Send, payloads: list[Payload]) -> protocol.Reply:
        (offset,) = payloads  # a send names one key: one part
        assert isinstance(offset, int)
        return protocol.SendOk(in_reply_to=body.msg_id, offset=offset)


class PollRpc(Rpc[protocol.Poll]):
    request = protocol.Poll

    def keys(self, body: protocol.Poll) -> Sequence[str]:
        return list(body.offsets)

    def part(self, body: protocol.Poll, keys: list[str]) -> protocol.Poll:
        return protocol.Poll(offsets={key: body.offsets[key] for key in keys}, msg_id=body.msg_id)

    def read(self, log: Log, body: protocol.Poll, limits: PollLimits, visibility: Visibility) -> Answer:
        """Messages from each asked offset on (for keys written by commits not yet durable,
        only below the first offset those gave)."""
        below, waits_for = visibility.poll(body.offsets)
        offsets, per_key = body.offsets, limits.per_key
        if len(offsets) * per_key > limits.messages:
            # Bound the reply: fewer messages per key, and past the budget, keys left out
            # (a poll may return any prefix of a key's log, including none of it).
            per_key = max(1, limits.messages // len(offsets))
            offsets = dict(itertools.islice(offsets.items(), limits.messages))
        msgs = log.read_from(offsets, per_key, limits.bytes, below)
        return Answer(protocol.PollOk(in_reply_to=body.msg_id, msgs=protocol.json_text(msgs)), waits_for)

    def payload(self, reply: protocol.Reply) -> Payload:
        return bytes(reply.msgs) if type(reply) is protocol.PollOk else None

    def peer_payload(self, asked: protocol.Poll, reply: protocol.PeerReply, src: str) -> Payload | object:
        if type(reply) is not protocol.PeerPollOk:
            return MISMATCH
        msgs = {key: messages for key, messages in reply.msgs.items() if key in asked.offsets}
        if len(msgs) < len(reply.msgs):
            logger.warning("%s answered a poll with keys it was not asked about; they were left out", src)
        return _encoder.encode(msgs)

    def join(self, body: protocol.Poll, payloads: list[Payload]) -> protocol.Reply:
        # one JSON object holding the members of every part's (their keys do not overlap)
        members = [text[1:-1] for text in payloads if isinstance(text, bytes) and len(text) > 2]
        return protocol.PollOk(in_reply_to=body.msg_id, msgs=protocol.json_text(b"{" + b",".join(members) + b"}"))


class CommitOffsetsRpc(Rpc[protocol.CommitOffsets]):
    request = protocol.CommitOffsets
    writes = True

    def keys(self, body: protocol.CommitOffsets) -> Sequence[str]:
        return list(body.offsets)

    def part(self, body: protocol.CommitOffsets, keys: list[str]) -> protocol.CommitOffsets:
        return protocol.CommitOffsets(offsets={key: body.offsets[key] for key in keys}, msg_id=body.msg_id)

    def write(self, log: Log, bodies: list[protocol.CommitOffsets]) -> list[protocol.Reply]:
        replies: list[protocol.Reply] = []
        for body in bodies:
            log.commit_offsets(body.offsets)
            replies.append(protocol.CommitOffsetsOk(in_reply_to=body.msg_id))
        return replies

    def remember(self, written: Written, body: protocol.CommitOffsets, reply: protocol.Reply) -> None:
        written.committed.update(body.offsets)

    def peer_payload(self, asked: protocol.CommitOffsets, reply: protocol.PeerReply, src: str) -> Payload | object:
        return None if type(reply) is protocol.PeerCommitOffsetsOk else MISMATCH

    def join(self, body: protocol.CommitOffsets, payloads: list[Payload]) -> protocol.Reply:
        return protocol.CommitOffsetsOk(in_reply_to=body.msg_id)


class ListCommittedOffsetsRpc(Rpc[protocol.ListCommittedOffsets]):
    request = protocol.ListCommittedOffsets

    def keys(self, body: protocol.ListCommittedOffsets) -> Sequence[str]:
        return body.keys

    def part(self, body: protocol.ListCommittedOffsets, keys: list[str]) -> protocol.ListCommittedOffsets:
        return protocol.ListCommittedOffsets(keys=keys, msg_id=body.msg_id)

    def read(self, log: Log, body: protocol.ListCommittedOffsets, limits: PollLimits,
             visibility: Visibility) -> Answer:
        """Committed offsets, waiting for the newest commit not yet durable that moved one of them."""
        offsets = log.committed_offsets(body.keys)
        return Answer(protocol.ListCommittedOffsetsOk(in_reply_to=body.msg_id, offsets=offsets), visibility.listing(body.keys))

    def payload(self, reply: protocol.Reply) -> Payload:
        return reply.offsets if type(reply) is protocol.ListCommittedOffsetsOk else None

    def peer_payload(self, asked: protocol.ListCommittedOffsets, reply: protocol.PeerReply, src: str) -> Payload | object:
        if type(reply) is not protocol.PeerListCommittedOffsetsOk:
            return MISMATCH
        keys = set(asked.keys)
        return {key: offset for key, offset in reply.offsets.items() if key in keys}

    def join(self, body: protocol.ListCommittedOffsets, payloads: list[Payload]) -> protocol.Reply:
        offsets: dict[str, int] = {}
        for part in payloads:
            if isinstance(part, dict):
                offsets.update(part)
        return protocol.ListCommittedOffsetsOk(in_reply_to=body.msg_id, offsets=offsets)


#: Every request type's record, by the type of its decoded body.
RPCS: Mapping[type, Rpc[Any]] = {rpc.request: rpc for rpc in (
    InitRpc(), SendRpc(), PollRpc(), CommitOffsetsRpc(), ListCommittedOffsetsRpc())}

assert set(RPCS) == set(protocol.REQUEST_TYPES.values()), "every request type of the protocol has a record"


def rpc_of(body: protocol.Request) -> Rpc[Any]:
    """The record of a decoded request's type."""
    return RPCS[type(body)]
