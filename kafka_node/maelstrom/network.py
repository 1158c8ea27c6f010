"""Maelstrom's simulated network: requests from the runner's clients encoded as Maelstrom
sends them, every stdout line validated and routed by its dest (clients, nodes, services) through
its destination's queue, replies matched by in_reply_to, RPC timeouts, down nodes, counts, logs."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import msgspec

from kafka_node.clientkit.framing import encode_line
from kafka_node.maelstrom.delivery import DeliveryQueue, DeliveryStats, Handed, LoopTimer, Parcel, Timer
from kafka_node.maelstrom.journal import JOURNAL_LIMIT, Journal, Message
from kafka_node.maelstrom.latency import LatencyDistribution
from kafka_node.maelstrom.process import NodeProcess

NODE_ID = "n0"

log = logging.getLogger("kafka_node.maelstrom.run")

#: Seconds a client waits for a reply before the operation is indeterminate (Maelstrom: 5 s).
RPC_TIMEOUT = 5.0


class InvalidOutput(Exception):
    """The node printed something on stdout that is not a Maelstrom message."""


class RpcTimeout(Exception):
    """No reply within the RPC timeout: the request may or may not have taken effect."""


class NodeLost(Exception):
    """The node died or was killed while (or before) a request was in flight."""


class Envelope(msgspec.Struct):
    src: str
    dest: str
    body: msgspec.Raw


class Head(msgspec.Struct):
    """The fields every body must have, and the one that routes a reply."""

    type: str
    in_reply_to: int | None = None


_envelope = msgspec.json.Decoder(Envelope)
_head = msgspec.json.Decoder(Head)


def parse_envelope(line: bytes) -> Envelope:
    """The envelope of one stdout line (its body still raw), or InvalidOutput."""
    if not line.endswith(b"\n"):
        raise InvalidOutput(f"an unterminated line at end of output: {_excerpt(line)!r}")
    try:
        return _envelope.decode(line)
    except msgspec.DecodeError as error:
        raise InvalidOutput(f"{error} in line {_excerpt(line)!r}") from None


def parse_head(envelope: Envelope, line: bytes) -> Head:
    """The type and in_reply_to of a reply's body, or InvalidOutput."""
    try:
        return _head.decode(envelope.body)
    except msgspec.DecodeError as error:
        raise InvalidOutput(f"{error} in line {_excerpt(line)!r}") from None


def _excerpt(line: bytes) -> str:
    return line[:300].decode("utf-8", "replace").rstrip("\n")


def _log_message(kind: str, line: bytes) -> None:
    """A :send or :recv line of the run's log: the message as the network wrote it."""
    log.info("%s %s", kind, line[:-1].decode("utf-8", "replace"))


def is_client(node_id: str) -> bool:
    """Maelstrom's rule: an id starting with "c" is a client's (maelstrom.util/client?)."""
    return node_id.startswith("c")


class NetStats:
    """Messages as Maelstrom's net checker counts them: every message, those to or from a
    client, and those between servers (nodes and services); each sent once, with a unique id."""

    GROUPS = ("all", "clients", "servers")

    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = {group: Counter() for group in self.GROUPS}

    def _count(self, what: str, src: str, dest: str) -> None:
        self.counts["all"][what] += 1
        self.counts["clients" if is_client(src) or is_client(dest) else "servers"][what] += 1

    def sent(self, src: str, dest: str) -> None:
        self._count("send-count", src, dest)
        self._count("msg-count", src, dest)

    def received(self, src: str, dest: str) -> None:
        self._count("recv-count", src, dest)

    def described(self, operations: int) -> dict[str, dict[str, float]]:
        """Maelstrom's :net result; msgs-per-op (messages per invoked operation) for all and
        for servers, the figure challenge 5c is judged by."""
        stats: dict[str, dict[str, float]] = {
            group: {name: self.counts[group][name] for name in ("send-count", "recv-count", "msg-count")}
            for group in self.GROUPS}
        if operations:
            for group in ("all", "servers"):
                stats[group]["msgs-per-op"] = round(stats[group]["msg-count"] / operations, 4)
        return stats


class Network:
    """Every message of a test, routed as Maelstrom's simulated network routes them: client
    requests to the node a client is bound to and replies back (matched by in_reply_to),
    messages between nodes and to and from services. Each message for a node or a service goes
    through that destination's DeliveryQueue, due after a latency drawn when neither end is a
    client (net.clj's `send!`); as it is taken (`recv!`), a grudge naming its sender among those
    its receiver drops (only nodes are ever partitioned, as in Maelstrom) drops and counts it.
    A message for a node that is restarting waits for it to come back; one for a node the kill
    nemesis holds `down` is dropped and counted (a request to it is never answered: its client
    times out); one for an id nobody has is counted and kept as an example. `log_send` and
    `log_recv` put every message in the run's log."""

    def __init__(self, timeout: float = RPC_TIMEOUT, latency: LatencyDistribution | None = None,
                 services: dict[str, Any] | None = None, clock: Callable[[], float] = time.monotonic,
                 journal_limit: int = JOURNAL_LIMIT, timer: Timer | None = None,
                 log_send: bool = False, log_recv: bool = False) -> None:
        self.timeout = timeout
        self.latency = latency or LatencyDistribution("constant", 0, random.Random(0))
        self.services = services or {}
        self.clock = clock
        self.timer = timer or LoopTimer()
        self.log_send, self.log_recv = log_send, log_recv
        self.journal = Journal(journal_limit)
        self.grudge: Mapping[str, frozenset[str]] = {}  # receiver -> senders whose messages it drops
        self.dropped = 0  # by partitions
        self.down: set[str] = set()  # nodes killed and not started again
        self.dropped_while_down = 0  # messages to nodes that were down
        self.nodes: dict[str, NodeProcess | None] = {}
        self.ready: dict[str, asyncio.Event] = {}  # cleared while a node starts or restarts
        self.gone: dict[str, str | None] = {}  # node -> why requests to it cannot be delivered
        self.counts: Counter[str] = Counter()  # what the runner saw of clients' traffic
        self.stats = NetStats()
        self.delivery = DeliveryStats()
        self.unknown_destinations: list[dict[str, Any]] = []
        self._queues: dict[str, DeliveryQueue] = {}  # node or service -> its queue
        # node -> (sender, line, journal entry) held while it starts again
        self._waiting: dict[str, list[tuple[str, bytes, Message | None]]] = defaultdict(list)
        # (client, msg_id) -> the node asked, and the future its reply resolves
        self._pending: dict[tuple[str, int], tuple[str, asyncio.Future[tuple[Head, msgspec.Raw]]]] = {}
        self._msg_ids: dict[str, itertools.count] = {}
        self._message_ids = itertools.count()

    def add_node(self, node_id: str) -> None:
        self.nodes.setdefault(node_id, None)
        self.ready.setdefault(node_id, asyncio.Event())
        self.gone.setdefault(node_id, "not started")

    def attach(self, node_id: str, node: NodeProcess) -> None:
        """A new incarnation of the node: clients wait for it to answer init."""
        self.nodes[node_id], self.gone[node_id] = node, None
        self.down.discard(node_id)
        self.ready[node_id].clear()

    def up(self, node_id: str) -> None:
        """The node answered init: deliver what waited for it, and let clients in."""
        node = self.nodes[node_id]
        for src, line, entry in self._waiting.pop(node_id, []):
            if node is not None and node.write(line):
                self._delivered(src, node_id, line, entry)
        self.ready[node_id].set()

    def _line(self, src: str, dest: str, body: Any) -> bytes:
        """The message as Maelstrom writes it, with the id it gives every message; logged
        with --log-net-send."""
        line = encode_line({"id": next(self._message_ids), "src": src, "dest": dest, "body": body})
        if self.log_send:
            _log_message(":send", line)
        return line

    def _queue(self, dest: str) -> DeliveryQueue:
        queue = self._queues.get(dest)
        if queue is None:
            queue = self._queues[dest] = DeliveryQueue(
                self.timer, lambda src, dest: src in self.grudge.get(dest, ()), self.delivery)
        return queue

    def _send(self, src: str, dest: str, deliver: Callable[[], Handed], entry: Message | None) -> None:
        """Into `dest`'s queue, due after a latency drawn for messages between servers (none
        for a client's request), as Maelstrom's `send!`."""
        between_servers = not is_client(src)
        delay = self.latency.draw_ms() / 1000 if between_servers else 0.0
        parcel = Parcel(src, dest, self.timer.now() + delay, deliver, lambda: self._drop_by_partition(entry),
                        between_servers=between_servers,
                        number=self.delivery.number(src, dest) if between_servers else 0)
        self._queue(dest).put(parcel)

    def _delivered(self, src: str, dest: str, line: bytes, entry: Message | None) -> None:
        """Counted as received, marked in the journal, and logged with --log-net-recv."""
        self.stats.received(src, dest)
        if entry:
            entry.received = self.clock()
        if self.log_recv:
            _log_message(":recv", line)

    async def call(self, client: str, node_id: str, body: dict[str, Any], *, timeout: float | None = None,
                   wait_ready: bool = True) -> tuple[Head, msgspec.Raw]:
        """Send one request from `client` to `node_id` and return the reply's head and raw body.
        Init (`wait_ready` False) is written at once: the node has just started."""
        if wait_ready:
            await self.ready[node_id].wait()
        if node_id in self.down:
            await self._unanswered(client, node_id, body, timeout or self.timeout)
        node = self.nodes.get(node_id)
        if self.gone.get(node_id) or node is None:
            raise NodeLost(self.gone.get(node_id) or "no node")
        msg_id = next(self._msg_ids.setdefault(client, itertools.count(1)))
        future = asyncio.get_running_loop().create_future()
        self._pending[client, msg_id] = (node_id, future)
        limit = timeout or self.timeout
        try:
            request = {**body, "msg_id": msg_id}
            line = self._line(client, node_id, request)
            entry = self.journal.sent(client, node_id, body["type"], request, self.clock())
            self.counts["sent"] += 1
            self.stats.sent(client, node_id)
            if not wait_ready:
                self._deliver_request(client, node_id, node, line, entry)
            else:
                self._send(client, node_id, lambda: self._deliver_request(client, node_id, node, line, entry), entry)
            async with asyncio.timeout(limit):
                return await future
        except TimeoutError:
            raise RpcTimeout(f"no reply within {limit:g} s") from None
        finally:
            self._pending.pop((client, msg_id), None)

    def _deliver_request(self, client: str, node_id: str, node: NodeProcess, line: bytes,
                         entry: Message | None) -> Handed:
        """A client's request reaches the incarnation it was sent to; to a node since killed it
        is dropped (one restarting has failed the request already)."""
        if node_id in self.down or self.nodes.get(node_id) is not node or self.gone.get(node_id):
            self._drop_while_down(entry)
            return False
        if not node.write(line):
            return False
        self._delivered(client, node_id, line, entry)
        return node.waiting_room() or True

    async def _unanswered(self, client: str, node_id: str, body: dict[str, Any], limit: float) -> NoReturn:
        """A request to a node that is down: sent, dropped, and timed out, as on a network."""
        msg_id = next(self._msg_ids.setdefault(client, itertools.count(1)))
        self._line(client, node_id, {**body, "msg_id": msg_id})  # its id, and its :send line
        self.counts["sent"] += 1
        self.stats.sent(client, node_id)
        self._drop_while_down(self.journal.sent(client, node_id, body["type"], {**body, "msg_id": msg_id},
                                                self.clock()))
        await asyncio.sleep(limit)
        raise RpcTimeout(f"no reply within {limit:g} s ({node_id} is down)")

    def route(self, src: str, envelope: Envelope, head: Head, line: bytes) -> None:
        """Take one message a node printed to wherever its `dest` says."""
        dest = envelope.dest
        self.stats.sent(src, dest)
        entry = self.journal.sent(src, dest, head.type, bytes(envelope.body), self.clock())
        if is_client(dest):
            if self.log_send or self.log_recv:
                logged = self._line(envelope.src, dest, envelope.body)
                if self.log_recv:
                    _log_message(":recv", logged)
            else:
                next(self._message_ids)  # every message has its id, logged or not
            if entry:
                entry.received = entry.sent
            self._deliver_to_client(envelope, head)
        elif dest in self.nodes:
            to_node = self._line(envelope.src, dest, envelope.body)
            self._send(src, dest, lambda: self._deliver_to_node(src, dest, to_node, entry), entry)
        elif dest in self.services:
            to_service = self._line(envelope.src, dest, envelope.body)
            self._send(src, dest, lambda: self._serve(src, dest, envelope.body, to_service, entry), entry)
        else:
            self.counts["unknown destination"] += 1
            if len(self.unknown_destinations) < 32:
                self.unknown_destinations.append({"src": src, "dest": dest, "line": _excerpt(line)})

    def _deliver_to_client(self, envelope: Envelope, head: Head) -> None:
        self.counts["received"] += 1
        asked = self._pending.get((envelope.dest, head.in_reply_to)) if head.in_reply_to is not None else None
        future = asked[1] if asked else None
        if future is None or future.done():
            self.counts["unmatched"] += 1
            return
        self.stats.received(envelope.src, envelope.dest)
        future.set_result((head, envelope.body))

    def _drop_by_partition(self, entry: Message | None) -> None:
        self.dropped += 1
        if entry:
            entry.dropped = True

    def _deliver_to_node(self, src: str, dest: str, line: bytes, entry: Message | None = None) -> Handed:
        node = self.nodes.get(dest)
        if dest in self.down:
            self._drop_while_down(entry)
        elif node is None or self.gone.get(dest) or not self.ready[dest].is_set():
            self._waiting[dest].append((src, line, entry))  # delivered when it answers init (see up)
        elif node.write(line):
            self._delivered(src, dest, line, entry)
            return node.waiting_room() or True
        return False

    def _serve(self, src: str, service: str, raw: msgspec.Raw, line: bytes, entry: Message | None = None) -> Handed:
        self._delivered(src, service, line, entry)
        try:
            body = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return True
        reply = self.services[service].handle(src, body) if isinstance(body, dict) else None
        if reply is None:
            return True  # Maelstrom's service thread throws and answers nothing
        reply["in_reply_to"] = body.get("msg_id")
        self.stats.sent(service, src)
        line = self._line(service, src, reply)
        answer = self.journal.sent(service, src, str(reply.get("type")), reply, self.clock())
        self._send(service, src, lambda: self._deliver_to_node(service, src, line, answer), answer)
        return True

    def forget_client(self, client: str) -> None:
        self._msg_ids.pop(client, None)

    def lose(self, node_id: str, reason: str) -> None:
        """The node is gone: each request in flight to it is indeterminate, and so is every
        later one until a new incarnation answers init."""
        self.gone[node_id] = reason
        self.ready[node_id].clear()
        for asked, future in self._pending.values():
            if asked == node_id and not future.done():
                future.set_exception(NodeLost(reason))

    def take_down(self, node_id: str) -> None:
        """The node was killed and stays down until it is started again: what is sent to it
        from now on is dropped (and what waited for it), and requests in flight to it are
        never answered (their clients time out), as on a network."""
        self.down.add(node_id)
        self.gone[node_id] = None
        for _, _, entry in self._waiting.pop(node_id, []):
            self._drop_while_down(entry)
        self.ready[node_id].set()  # nothing to wait for: requests go out, and are lost

    def _drop_while_down(self, entry: Message | None) -> None:
        self.dropped_while_down += 1
        if entry:
            entry.dropped = True

    def lose_all(self, reason: str) -> None:
        for node_id in self.nodes:
            self.lose(node_id, reason)

    def described(self, operations: int) -> dict[str, Any]:
        """results.json's `net`: Maelstrom's statistics, the latency drawn, and delivery's order."""
        return {**self.stats.described(operations), "latency": self.latency.described(),
                "delivery": self.delivery.described()}
