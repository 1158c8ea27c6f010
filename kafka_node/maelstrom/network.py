"""Maelstrom's simulated network: requests from the runner's clients encoded as Maelstrom
sends them, every stdout line validated and routed by its dest (clients, nodes, services),
replies matched to requests by in_reply_to, RPC timeouts, latency, partitions, down nodes, counts."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import msgspec

from kafka_node.clientkit.framing import encode_line
from kafka_node.maelstrom.journal import JOURNAL_LIMIT, Journal, Message
from kafka_node.maelstrom.process import NodeProcess

NODE_ID = "n0"

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
    messages between nodes and to and from services, delayed by `latency` seconds when
    neither end is a client. A message for a node that is restarting waits for it to come
    back; one for a node the kill nemesis holds `down` is dropped and counted (a request to it
    is never answered: its client times out); one for an id nobody has is counted and kept as
    an example. While `grudge` names a message's sender among those its receiver drops (only
    nodes are ever partitioned, as in Maelstrom), the message is dropped and counted."""

    def __init__(self, timeout: float = RPC_TIMEOUT, latency: float = 0.0,
                 services: dict[str, Any] | None = None, clock: Callable[[], float] = time.monotonic,
                 journal_limit: int = JOURNAL_LIMIT) -> None:
        self.timeout = timeout
        self.latency = latency
        self.services = services or {}
        self.clock = clock
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
        self.unknown_destinations: list[dict[str, Any]] = []
        # node -> lines held while it is down, with their journal entries
        self._waiting: dict[str, list[tuple[bytes, Message | None]]] = defaultdict(list)
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
        for line, entry in self._waiting.pop(node_id, []):
            if node is not None and node.write(line) and entry:
                entry.received = self.clock()
        self.ready[node_id].set()

    def _encode(self, src: str, dest: str, body: Any) -> bytes:
        return encode_line({"id": next(self._message_ids), "src": src, "dest": dest, "body": body})

    async def call(self, client: str, node_id: str, body: dict[str, Any], *, timeout: float | None = None,
                   wait_ready: bool = True) -> tuple[Head, msgspec.Raw]:
        """Send one request from `client` to `node_id` and return the reply's head and raw body."""
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
            line = self._encode(client, node_id, request)
            self._journal_delivered(client, node_id, body["type"], request)
            if not node.write(line):
                raise NodeLost(self.gone.get(node_id) or "the node's stdin is closed")
            self.counts["sent"] += 1
            self.stats.sent(client, node_id)
            self.stats.received(client, node_id)
            async with asyncio.timeout(limit):  # a node that stops reading its stdin counts too
                await node.drain()
                return await future
        except TimeoutError:
            raise RpcTimeout(f"no reply within {limit:g} s") from None
        finally:
            self._pending.pop((client, msg_id), None)

    async def _unanswered(self, client: str, node_id: str, body: dict[str, Any], limit: float) -> NoReturn:
        """A request to a node that is down: sent, dropped, and timed out, as on a network."""
        msg_id = next(self._msg_ids.setdefault(client, itertools.count(1)))
        self.counts["sent"] += 1
        self.stats.sent(client, node_id)
        self.dropped_while_down += 1
        if entry := self.journal.sent(client, node_id, body["type"], {**body, "msg_id": msg_id}, self.clock()):
            entry.dropped = True
        await asyncio.sleep(limit)
        raise RpcTimeout(f"no reply within {limit:g} s ({node_id} is down)")

    def route(self, src: str, envelope: Envelope, head: Head, line: bytes) -> None:
        """Take one message a node printed to wherever its `dest` says."""
        dest = envelope.dest
        self.stats.sent(src, dest)
        entry = self.journal.sent(src, dest, head.type, bytes(envelope.body), self.clock())
        if is_client(dest):
            if entry:
                entry.received = entry.sent
            self._deliver_to_client(envelope, head)
        elif dest in self.nodes:
            if self._drops(src, dest, entry):
                return
            self._later(lambda: self._deliver_to_node(src, dest, self._encode(envelope.src, dest, envelope.body),
                                                      entry), src, dest)
        elif dest in self.services:
            self._later(lambda: self._serve(src, dest, envelope.body, entry), src, dest)
        else:
            self.counts["unknown destination"] += 1
            if len(self.unknown_destinations) < 32:
                self.unknown_destinations.append({"src": src, "dest": dest, "line": _excerpt(line)})

    def _later(self, deliver: Any, src: str, dest: str) -> None:
        if self.latency > 0 and not (is_client(src) or is_client(dest)):
            asyncio.get_running_loop().call_later(self.latency, deliver)
        else:
            deliver()

    def _deliver_to_client(self, envelope: Envelope, head: Head) -> None:
        self.counts["received"] += 1
        asked = self._pending.get((envelope.dest, head.in_reply_to)) if head.in_reply_to is not None else None
        future = asked[1] if asked else None
        if future is None or future.done():
            self.counts["unmatched"] += 1
            return
        self.stats.received(envelope.src, envelope.dest)
        future.set_result((head, envelope.body))

    def _drops(self, src: str, dest: str, entry: Message | None) -> bool:
        """Whether a partition drops this message from `src` to `dest` (counted if so)."""
        if src not in self.grudge.get(dest, ()):
            return False
        self.dropped += 1
        if entry:
            entry.dropped = True
        return True

    def _journal_delivered(self, src: str, dest: str, type: str, body: dict[str, Any]) -> None:
        """Journal a message that arrives as it is sent (to or from a client)."""
        if entry := self.journal.sent(src, dest, type, body, self.clock()):
            entry.received = entry.sent

    def _deliver_to_node(self, src: str, dest: str, line: bytes, entry: Message | None = None) -> None:
        node = self.nodes.get(dest)
        if dest in self.down:
            self._drop_while_down(entry)
        elif node is None or self.gone.get(dest) or not self.ready[dest].is_set():
            self._waiting[dest].append((line, entry))
        elif node.write(line):
            self.stats.received(src, dest)
            if entry:
                entry.received = self.clock()

    def _serve(self, src: str, service: str, raw: msgspec.Raw, entry: Message | None = None) -> None:
        self.stats.received(src, service)
        if entry:
            entry.received = self.clock()
        try:
            body = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return
        if not isinstance(body, dict):
            return
        reply = self.services[service].handle(src, body)
        if reply is None:
            return  # Maelstrom's service thread throws and answers nothing
        reply["in_reply_to"] = body.get("msg_id")
        self.stats.sent(service, src)
        line = self._encode(service, src, reply)
        answer = self.journal.sent(service, src, str(reply.get("type")), reply, self.clock())
        self._later(lambda: self._deliver_to_node(service, src, line, answer), service, src)

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
        for _, entry in self._waiting.pop(node_id, []):
            self._drop_while_down(entry)
        self.ready[node_id].set()  # nothing to wait for: requests go out, and are lost

    def _drop_while_down(self, entry: Message | None) -> None:
        self.dropped_while_down += 1
        if entry:
            entry.dropped = True

    def lose_all(self, reason: str) -> None:
        for node_id in self.nodes:
            self.lose(node_id, reason)
