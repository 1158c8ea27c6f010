"""One incarnation of a node in the simulator: the real replication shell (machines, ledger, lin-kv
calls, directory, waiting room) and the real per-partition visibility, on a MemStore; clients'
requests applied as the node applies them, forwarded to the leader it knows, or parked."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from kafka_node import decoding, errors, protocol
from kafka_node.errors import NothingApplied
from kafka_node.outbox import Held
from kafka_node.replication.events import Entry
from kafka_node.replication.placement import Placement
from kafka_node.replication.shell import Replication
from kafka_node.replication.timing import Timing
from kafka_node.unsynced import PartitionedUnsynced
from kafka_node.wire import Sent

from support.sim.memstore import MemStore

#: Messages at most per key in a poll's reply.
POLL_LIMIT = 20


@dataclass(frozen=True)
class Request:
    """A client's request: `op` is send, poll, commit or list; `args` its fields."""

    client: str
    req_id: int
    op: str
    args: dict[str, Any]

    @property
    def keys(self) -> list[str]:
        if self.op == "send":
            return [self.args["key"]]
        if self.op == "list":
            return list(self.args["keys"])
        return list(self.args["offsets"])

    @property
    def writes(self) -> bool:
        return self.op in ("send", "commit")


@dataclass(frozen=True)
class Forward:
    """A request a node sends on to the leader it knows, numbered for the answer."""

    request: Request
    number: int


@dataclass(frozen=True)
class ForwardAnswer:
    number: int
    body: Any  # a protocol reply or error body


@dataclass(eq=False)
class _Parked:
    """A request waiting here for its partition's leader (the same object each time it waits)."""

    request: Request
    via: tuple[str, int] | None


@dataclass
class _InFlight:
    request: Request
    leader: str
    deadline: float


@dataclass
class SimNode:
    """A node's process between its start and its death. `send(dest, kind, payload)` puts a
    message on the network; the world calls `receive`, `tick` and `synced`."""

    node_id: str
    incarnation: int
    placement: Placement
    timing: Timing
    store: MemStore
    now: float
    send: Callable[[str, str, Any], None]
    rng: random.Random
    #: Told of every reply of a request this node applied as it leaves it (what the node promised,
    #: whether or not the client hears it), with the epoch of each partition it was applied in.
    replied: Callable[[str, Request, Any, dict[int, int]], None]
    shell: Replication = field(init=False)
    unsynced: PartitionedUnsynced = field(init=False)
    outbox: list[Held] = field(default_factory=list)
    forwards: dict[int, _InFlight] = field(default_factory=dict)
    #: (reply's dest, req_id) -> the request applied here, and the epoch it was applied in, by partition
    applied: dict[tuple[str, int], tuple[Request, dict[int, int]]] = field(default_factory=dict)
    next_number: int = 1

    def __post_init__(self) -> None:
        # numbered from a random start, as the node numbers what it sends on, so that a late
        # answer to a request an earlier incarnation sent on is not taken for one of this one's
        self.next_number = self.rng.getrandbits(40)
        self.shell = Replication(self.node_id, self.placement, self.store, self.timing, self.now, self.rng)
        self.unsynced = PartitionedUnsynced(self.placement.partition, self.shell.hw_of)
        self.shell.start(self.now)
        self._drain()

    # --- input -------------------------------------------------------------------------------

    def receive(self, batch: list[tuple[str, str, Any]], now: float) -> None:
        """Messages read together: replicas' messages and lin-kv's replies first, as the node
        hands them to replication before the requests around them are routed."""
        self.now = now
        wire = [d for _, kind, payload in batch if kind == "wire" for d in decoding.decode_in_cluster(payload)]
        if wire:
            self.shell.step([d for d in wire if not isinstance(d, protocol.Rejected)], now)
        for src, kind, payload in batch:
            if kind == "client":
                self._route(payload, now, via=None)
            elif kind == "forward":
                self._route(payload.request, now, via=(src, payload.number))
            elif kind == "forward_answer":
                self._forward_answered(src, payload)
        self._drain()

    def tick(self, now: float) -> None:
        self.now = now
        self.shell.tick(now, now)
        parked = self.shell.waiting.take()
        for waiting in parked:
            self._route(waiting.request, now, waiting.via, waiting)
        self.shell.waiting.tried(parked)
        for number, flight in list(self.forwards.items()):
            if flight.deadline <= now:
                del self.forwards[number]
                self._reply(flight.request, self._unanswered(flight.request, f"no reply from {flight.leader}"), 0, None)
        self._drain()

    def synced(self, upto: int) -> None:
        """A sync that began at commit `upto` returned."""
        self.store.sync(upto)
        self._release()

    # --- requests ----------------------------------------------------------------------------

    def _route(self, request: Request, now: float, via: tuple[str, int] | None, parked: _Parked | None = None) -> None:
        leaders = {self.shell.leader_of(key) for key in request.keys}
        if via is None and len(leaders) == 1 and (leader := next(iter(leaders))) not in (None, self.node_id):
            number = self.next_number  # a client's request: sent on to its leader (once: a peer's is not)
            self.next_number += 1
            self.forwards[number] = _InFlight(request, leader, now + self.timing.forward)
            self.send(leader, "forward", Forward(request, number))
            return
        reason = None if leaders == {self.node_id} else f"keys led by {sorted(map(str, leaders))}"
        reason = reason or self.shell.refusal(request.keys, request.writes, self.store.durable, now)
        if reason is None:
            self._apply(request, via)
        elif self.shell.waiting.wait(parked or _Parked(request, via), now, forwarded=via is not None):
            return
        else:
            self._reply(request, errors.error_reply(request.req_id, NothingApplied(f"not applied: {reason}")), 0, via)

    def _apply(self, request: Request, via: tuple[str, int] | None) -> None:
        """The request applied as the node applies it: a write in a transaction of its own,
        stamped with its partition's batch; a read below what the in-sync set holds."""
        store, args, now = self.store, request.args, self.now
        durable = store.durable
        if request.op == "send":
            key = args["key"]
            pid, seq, epoch = self.shell.stamp(key)
            offset = store.next_offset(key)
            commit = store.write({pid: [Entry(key, offset, seq, epoch, msgspec.json.encode(args["msg"]).decode())]}, {})
            self.unsynced.record(commit, {key: offset}, (), durable)
            self.shell.wrote(commit, [key], [], now)
            self._reply(request, protocol.SendOk(in_reply_to=request.req_id, offset=offset), commit, via)
        elif request.op == "commit":
            offsets = dict(args["offsets"])
            commit = store.write({}, offsets)
            self.unsynced.record(commit, {}, offsets, durable)
            self.shell.wrote(commit, [], offsets, now)
            self._reply(request, protocol.CommitOffsetsOk(in_reply_to=request.req_id), commit, via)
        elif request.op == "poll":
            below = self.unsynced.poll_below(args["offsets"], durable)
            msgs = {}
            for key, first in args["offsets"].items():
                entries = store.read(key, first, POLL_LIMIT)
                if key in below:
                    entries = [entry for entry in entries if entry.offset < below[key]]
                if entries:
                    msgs[key] = [[entry.offset, msgspec.json.decode(entry.msg)] for entry in entries]
            body = protocol.PollOk(in_reply_to=request.req_id, msgs=msgspec.Raw(msgspec.json.encode(msgs)))
            self._reply(request, body, 0, via)
        else:
            keys = args["keys"]
            body = protocol.ListCommittedOffsetsOk(in_reply_to=request.req_id, offsets=store.committed_offsets(keys))
            self._reply(request, body, self.unsynced.listing_waits_for(keys, durable), via)

    def _reply(self, request: Request, body: Any, commit: int, via: tuple[str, int] | None) -> None:
        # to a request sent on by another node: that node, with the number it sent it under
        dest = request.client if via is None else f"{via[0]}#{via[1]}"
        if not isinstance(body, protocol.Error):
            epochs = {}
            for key in request.keys:
                machine = self.shell.machines[self.placement.partition(key)]
                assert machine.lead is not None  # applied here: led here
                epochs[machine.pid] = machine.lead.epoch
            self.applied[(dest, request.req_id)] = (request, epochs)
        self.outbox += self.shell.hold([Held(protocol.Outgoing(src=self.node_id, dest=dest, body=body), commit)])
        self._release()

    def _forward_answered(self, src: str, answer: ForwardAnswer) -> None:
        flight = self.forwards.get(answer.number)
        if flight is None or flight.leader != src:
            return  # late, or not asked
        del self.forwards[answer.number]
        self.outbox.append(Held(protocol.Outgoing(src=self.node_id, dest=flight.request.client, body=answer.body), 0))

    def _unanswered(self, request: Request, why: str) -> Any:
        """A request sent on and never answered: a read read nothing; a write may have been applied."""
        failure = errors.OutcomeUnknown(why) if request.writes else NothingApplied(why)
        return errors.error_reply(request.req_id, failure)

    # --- output ------------------------------------------------------------------------------

    def _drain(self) -> None:
        out = self.shell.ready()
        for sent in out.send:
            self.send(sent.dest, "wire", protocol.encode([sent]).rstrip(b"\n"))
        self.outbox += out.held
        for former, pid in out.moved:
            for number, flight in list(self.forwards.items()):
                if flight.leader == former and any(self.placement.partition(k) == pid for k in flight.request.keys):
                    del self.forwards[number]
                    self._reply(flight.request, self._unanswered(
                        flight.request, f"{former} no longer leads these keys"), 0, None)
        self._release()

    def _release(self) -> None:
        """Send what the outbox holds once its commit is durable."""
        durable = self.store.durable
        kept = []
        for held in self.outbox:
            if held.commit > durable:
                kept.append(held)
                continue
            reply = held.reply
            if (not isinstance(reply, Sent) and (applied := self.applied.pop((reply.dest, reply.body.in_reply_to), None))
                    and not isinstance(reply.body, protocol.Error)):  # not an error in its place
                self.replied(self.node_id, *applied[:1], reply.body, applied[1])
            if isinstance(reply, Sent):
                self.send(reply.dest, "wire", protocol.encode([reply]).rstrip(b"\n"))
            elif "#" in reply.dest:
                node, number = reply.dest.split("#")
                self.send(node, "forward_answer", ForwardAnswer(int(number), reply.body))
            else:
                self.send(reply.dest, "reply", reply.body)
        self.outbox = kept
