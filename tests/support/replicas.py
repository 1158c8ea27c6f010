"""Several of our nodes' cores in the test's own process, each on its own real SQLite file, with
Maelstrom's lin-kv between them: the test carries every message, on a clock it moves, and can cut
a node off (or one direction of one link), pause it, kill it, lose its file, drop a message in
flight, hold one back to deliver it late, or lose lin-kv's reply to a request it applied, to watch
replication happen one message at a time."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from kafka_node import protocol
from kafka_node.maelstrom.services import LinKV
from kafka_node.node import Node, ReplicationSettings, Step
from kafka_node.outbox import Held
from kafka_node.replication.placement import kv_key, partition_of
from kafka_node.replication.timing import Timing
from kafka_node.storage import Storage

_encode = msgspec.json.Encoder().encode

#: How often the harness moves the clock and ticks every node, as the serve loop does.
TICK = Timing().tick

#: Chooses messages in flight by who sends them, to whom, and what they say (the decoded body).
Match = Callable[[str, str, dict[str, Any]], bool]


class Replicas:
    """Nodes n0, n1, ... (a core each, as `maelstrom-kafka` runs it) and lin-kv. A reply leaves
    a node once the commit it waits for is durable, as the outbox lets it; a node cut off
    neither sends nor receives; a killed node is gone until `restart`; a paused node reads
    nothing and runs no timer until `resume`. A message is dropped or held back when it would
    be delivered (Maelstrom drops a partitioned message as its receiver dequeues it)."""

    def __init__(self, tmp_path: Path, count: int = 3, replication: ReplicationSettings | None = None,
                 max_batch: int | None = None) -> None:
        self.tmp_path = tmp_path
        self.ids = [f"n{i}" for i in range(count)]
        self.replication = replication or ReplicationSettings()
        self.max_batch = max_batch
        self.kv = LinKV()
        self.now = 0.0
        self.cut: set[str] = set()
        self.links_cut: set[tuple[str, str]] = set()  # (src, dest): one direction of one link
        self.paused: dict[str, list[bytes]] = {}  # node -> the lines it has not read yet
        self.delayed: list[tuple[str, str, bytes]] = []  # messages held back, oldest first
        self._delays: list[Match] = []
        self._lost_kv_replies: list[Callable[[str, dict[str, Any]], bool]] = []
        self.sent: list[tuple[str, str, bytes]] = []  # every message a node or lin-kv sent, in order
        self.nodes: dict[str, Node] = {}
        self.storages: dict[str, Storage] = {}
        self.held: dict[str, list[Held]] = {}
        self.queue: deque[tuple[str, str, bytes]] = deque()  # (src, dest, JSON line)
        self.replies: dict[int, dict[str, Any]] = {}  # msg_id -> a client's reply body
        self.sent_between_nodes = 0
        self._msg_ids = itertools.count(1000)
        for node_id in self.ids:
            self.start(node_id)
        self.settle(0.5)

    # --- the nodes --------------------------------------------------------------------------

    def start(self, node_id: str, init: bool = True) -> None:
        """Start a node's process on its file; without `init`, it reads its first lines before
        Maelstrom's init (a node restarted mid-run hears from its peers before that)."""
        storage = Storage.open(str(self.tmp_path / f"{node_id}.db"))
        self.storages[node_id] = storage
        self.nodes[node_id] = Node(lambda _node_id: storage, max_batch=self.max_batch, replication=self.replication)
        self.held[node_id] = []
        if init:
            self.init(node_id)

    def init(self, node_id: str) -> None:
        """Maelstrom's init, naming every node."""
        self._feed(node_id, [message_line("c0", node_id, {"type": "init", "node_id": node_id, "node_ids": self.ids,
                                                   "msg_id": next(self._msg_ids)})])

    def kill(self, node_id: str, lose_file: bool = False) -> None:
        """SIGKILL, as near as a process can be: what is not durable is gone, messages to it drop."""
        self.storages.pop(node_id).close()
        del self.nodes[node_id]
        self.held.pop(node_id)
        self.paused.pop(node_id, None)
        if lose_file:
            for path in self.tmp_path.glob(f"{node_id}.db*"):
                path.unlink()

    def restart(self, node_id: str, init: bool = True) -> None:
        self.start(node_id, init)

    def pause(self, node_id: str) -> None:
        """SIGSTOP: the node's input waits unread, and none of its timers runs."""
        self.paused.setdefault(node_id, [])

    def resume(self, node_id: str) -> None:
        """SIGCONT: the node reads everything that came meanwhile at once, in one batch, before
        its first tick; what that batch sends is left in flight."""
        lines = self.paused.pop(node_id)
        if lines:
            self._feed(node_id, lines)

    # --- the network ----------------------------------------------------------------------------

    def cut_link(self, src: str, dest: str) -> None:
        """Drop every message from `src` to `dest` (only that direction) until `heal_link`."""
        self.links_cut.add((src, dest))

    def heal_link(self, src: str, dest: str) -> None:
        self.links_cut.discard((src, dest))

    def isolate(self, node_id: str) -> None:
        """Cut both directions of every link between `node_id` and the other nodes (not lin-kv)."""
        for other in self.ids:
            if other != node_id:
                self.cut_link(node_id, other)
                self.cut_link(other, node_id)

    def heal(self) -> None:
        """Every node and link carries messages again."""
        self.cut.clear()
        self.links_cut.clear()

    def drop(self, match: Match) -> int:
        """Drop the messages in flight now that `match` chooses; how many."""
        kept = [(src, dest, line) for src, dest, line in self.queue if not match(src, dest, _body(line))]
        dropped = len(self.queue) - len(kept)
        self.queue = deque(kept)
        return dropped

    def delay(self, match: Match) -> None:
        """Hold back every message `match` chooses from now on, as it would be delivered, until
        `deliver_delayed` (a slow link, for those messages alone)."""
        self._delays.append(match)

    def deliver_delayed(self) -> None:
        """Deliver the messages held back, oldest first, and hold no more; what they cause is
        left in flight."""
        delayed, self.delayed, self._delays = self.delayed, [], []
        for message in delayed:
            self._carry(*message)

    def lose_kv_reply(self, match: Callable[[str, dict[str, Any]], bool]) -> None:
        """The next request lin-kv receives that `match` chooses (by its sender and body) is
        applied, and its reply lost."""
        self._lost_kv_replies.append(match)

    # --- clients ------------------------------------------------------------------------------

    def request(self, node_id: str, body: dict[str, Any]) -> int:
        """A client's request to `node_id` (read at once, or on waking if it is paused); its
        msg_id (the reply lands in `replies`)."""
        msg_id = next(self._msg_ids)
        line = message_line("c1", node_id, {**body, "msg_id": msg_id})
        if node_id in self.paused:
            self.paused[node_id].append(line)
        else:
            self._feed(node_id, [line])
        return msg_id

    def ask(self, node_id: str, body: dict[str, Any], seconds: float = 0.0) -> dict[str, Any] | None:
        """A request, the messages it causes carried (for `seconds` more of the clock): its reply, if any."""
        msg_id = self.request(node_id, body)
        self.settle(seconds)
        return self.replies.get(msg_id)

    # --- carrying messages and moving the clock -----------------------------------------------

    def settle(self, seconds: float = 0.0) -> None:
        """Carry every message until none is left, moving the clock by `seconds` in ticks."""
        end = self.now + seconds
        self._deliver()
        while self.now < end:
            self.now = min(end, self.now + TICK)
            for node_id, node in list(self.nodes.items()):
                if node_id in self.nodes and node_id not in self.paused:
                    self._after(node_id, node.tick(self.now))
            self._deliver()

    def _deliver(self) -> None:
        while self.queue:
            self.deliver_one()

    def deliver_one(self) -> None:
        """Carry the oldest message in flight (or drop it, to or from a node cut off, or hold
        it back if a `delay` chooses it)."""
        src, dest, line = self.queue.popleft()
        if src in self.cut or dest in self.cut or (src, dest) in self.links_cut:
            return
        if any(match(src, dest, _body(line)) for match in self._delays):
            self.delayed.append((src, dest, line))
            return
        self._carry(src, dest, line)

    def _carry(self, src: str, dest: str, line: bytes) -> None:
        if dest == "lin-kv":
            body = _body(line)
            reply = self.kv.handle(src, body)
            lost = next((match for match in self._lost_kv_replies if match(src, body)), None)
            if lost is not None:
                self._lost_kv_replies.remove(lost)
            elif reply is not None:
                self._send("lin-kv", src, message_line("lin-kv", src, {**reply, "in_reply_to": body["msg_id"]}))
        elif dest in self.paused:
            self.sent_between_nodes += src in self.ids
            self.paused[dest].append(line)
        elif dest in self.nodes:
            self.sent_between_nodes += src in self.ids
            self._feed(dest, [line])
        elif dest.startswith("c"):
            body = _body(line)
            self.replies[body.get("in_reply_to")] = body

    def _send(self, src: str, dest: str, line: bytes) -> None:
        self.queue.append((src, dest, line))
        self.sent.append((src, dest, line))

    def feed(self, node_id: str, lines: list[bytes]) -> None:
        """Lines a node reads in one batch."""
        self._feed(node_id, lines)

    def _feed(self, node_id: str, lines: list[bytes]) -> None:
        self._after(node_id, self.nodes[node_id].receive(lines, self.now))

    def _after(self, node_id: str, step: Step) -> None:
        """Send what the step sends at once; sync the file, as the serve loop does, and let go
        what became durable."""
        for sent in step.forwarded:
            self._send(sent.src, sent.dest, protocol.encode([sent]).rstrip(b"\n"))
        storage = self.storages[node_id]
        storage.sync()
        waiting = self.held[node_id] + step.held
        self.held[node_id] = [held for held in waiting if held.commit > storage.durable]
        for held in waiting:
            if held.commit <= storage.durable:
                self._send(held.reply.src, held.reply.dest, protocol.encode([held.reply]).rstrip(b"\n"))

    def last_sent(self, src: str, dest: str) -> dict[str, Any]:
        """The body of the latest message `src` has in flight to `dest`."""
        return next(msgspec.json.decode(line)["body"] for s, d, line in reversed(self.queue) if (s, d) == (src, dest))

    def in_flight(self, match: Match) -> list[dict[str, Any]]:
        """The bodies of the messages in flight now that `match` chooses, oldest first."""
        return [body for src, dest, line in self.queue if match(src, dest, body := _body(line))]

    def sent_since(self, start: int, match: Match) -> list[dict[str, Any]]:
        """The bodies of the messages sent since `len(self.sent)` was `start` that `match` chooses."""
        return [body for src, dest, line in self.sent[start:] if match(src, dest, body := _body(line))]

    # --- looking inside ---------------------------------------------------------------------------

    def leadership(self, part: int) -> dict[str, Any]:
        return msgspec.json.decode(msgspec.json.encode(self.kv.state.data[_encode(kv_key(part))]))

    def partition(self, key: str) -> int:
        return partition_of(key, len(self.ids))

    def key_in(self, part: int, skip: int = 0) -> str:
        return [str(i) for i in range(10_000) if self.partition(str(i)) == part][skip]

    def stored(self, node_id: str, key: str) -> list[tuple[int, Any]]:
        """What a node's file holds for `key`, read from the file itself."""
        rows = self.storages[node_id].conn.execute(
            "SELECT log_offset, msg FROM messages WHERE key = ? ORDER BY log_offset", (key,))
        return [(offset, msgspec.json.decode(msg)) for offset, msg in rows]


def message_line(src: str, dest: str, body: dict[str, Any]) -> bytes:
    return _encode({"src": src, "dest": dest, "body": body})


def _body(line: bytes) -> dict[str, Any]:
    return msgspec.json.decode(line)["body"]
