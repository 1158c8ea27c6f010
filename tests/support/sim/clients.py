"""The simulator's clients: each with one request in flight to a node it picks at random, sending,
polling, committing and listing as Maelstrom's client does, every outcome handed to the checks; at
the end, polls of every key until every acknowledged message was read."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import msgspec

from kafka_node import protocol
from kafka_node.protocol import ErrorCode

from support.sim.checks import Violation
from support.sim.node import Request

if TYPE_CHECKING:
    from support.sim.world import World


class Client:
    def __init__(self, world: World, name: str, rng: random.Random, keys: list[str]) -> None:
        self.world = world
        self.name = name
        self.rng = rng
        self.keys = keys
        self.final = False  # the load is over: poll every key until everything acknowledged is read
        self._ids = iter(range(1, 1 << 30))
        self._pending: tuple[Request, str, float] | None = None  # the request, its node, when sent
        self._seen: dict[str, int] = {}  # key -> the highest offset this client read
        self._final_turn = 0
        self._final_next: dict[str, int] = {}  # in the final polls: key -> the next offset to read

    # --- one operation at a time -----------------------------------------------------------------

    def next(self) -> None:
        world, rng = self.world, self.rng
        if self._pending is not None or world.now > world.plan.load + 0.5 + world.plan.heal - 0.1:
            return
        if self.final:
            request = self._final_poll()
        elif world.now > world.plan.load:
            return
        else:
            request = self._operation()
        node = rng.choice(world.plan.node_ids)
        self._pending = (request, node, world.now)
        world.send(self.name, node, "client", request)
        world.at(world.now + world.timing.client, self._timed_out, request.req_id)

    def _operation(self) -> Request:
        rng, world = self.rng, self.world
        kind = rng.choices(("send", "poll", "commit", "list"), (6, 2, 1, 1))[0]
        partition = rng.choice(list(world.keys_by_partition.values()))
        keys = rng.sample(partition, rng.randint(1, len(partition))) if rng.random() < 0.8 else \
            rng.sample(self.keys, rng.randint(1, 2))
        req_id = next(self._ids)
        if kind == "send":
            key = keys[0]
            return Request(self.name, req_id, "send", {"key": key, "msg": world.next_message(key)})
        if kind == "poll":
            return Request(self.name, req_id, "poll", {"offsets": {k: max(0, self._seen.get(k, -1) - rng.randint(0, 3))
                                                                    for k in keys}})
        if kind == "commit":
            return Request(self.name, req_id, "commit", {"offsets": {k: self._seen.get(k, rng.randint(0, 3)) for k in keys}})
        return Request(self.name, req_id, "list", {"keys": keys})

    def _final_poll(self) -> Request:
        """Each partition's keys in turn, from the start, page by page: every message is read."""
        partitions = list(self.world.keys_by_partition.values())
        keys = partitions[self._final_turn % len(partitions)]
        self._final_turn += 1
        return Request(self.name, next(self._ids), "poll", {"offsets": {k: self._final_next.get(k, 0) for k in keys}})

    def replace(self) -> None:
        """A fresh client in this one's place: the request in flight is never heard of again."""
        if self._pending is not None:
            self.world.outcome_count(self._pending[0].op, "info")
            self._pending = None

    # --- outcomes --------------------------------------------------------------------------------

    def answered(self, body: Any) -> None:
        pending = self._pending
        if pending is None or getattr(body, "in_reply_to", None) != pending[0].req_id:
            return
        request, _, sent = pending
        self._pending = None
        world, checks = self.world, self.world.checks
        if isinstance(body, protocol.Error):
            definite = body.code in ErrorCode.__members__.values() and ErrorCode(body.code).is_definite()
            world.outcome_count(request.op, "fail" if definite else "info")
            world.note(self.name, request.op, request.args, "-> error", body.code, body.text)
            if definite and request.op == "send":
                checks.send_failed(request.args["key"], request.args["msg"])
        else:
            world.outcome_count(request.op, "ok")
            world.note(self.name, request.op, request.args, "->", body)
            if request.op == "send":
                checks.send_ok(request.args["key"], body.offset, request.args["msg"])
            elif request.op == "poll":
                msgs = msgspec.json.decode(body.msgs)
                checks.poll_ok(request.args["offsets"], msgs)
                for key, entries in msgs.items():
                    checks.polled.update((key, offset) for offset, _ in entries)
                    self._seen[key] = max(self._seen.get(key, -1), entries[-1][0])
                    if self.final:
                        self._final_next[key] = max(self._final_next.get(key, 0), entries[-1][0] + 1)
            elif request.op == "commit":
                checks.commit_ok(request.args["offsets"], world.now)
            else:
                checks.listing_ok(body.offsets, request.args["keys"], sent, world.now)
        world.at(world.now + self.rng.expovariate(1 / world.plan.think), self.next)

    def _timed_out(self, req_id: int) -> None:
        pending = self._pending
        if pending is None or pending[0].req_id != req_id:
            return
        request, node, sent = pending
        self._pending = None
        world = self.world
        world.outcome_count(request.op, "info")
        if not world.interrupted_between(node, sent, world.now):
            raise Violation(f"{node} stayed up but never answered {self.name}'s {request.op} {request.args} "
                            f"sent at {sent:.3f}s")
        world.at(world.now + self.rng.expovariate(1 / world.plan.think), self.next)
