"""The simulated world of one seed: a virtual clock, a network that delays (with a long tail),
reorders, drops and duplicates, lin-kv from the runner's own service code, the nodes, their clients
and the faults; every event in time order, the invariants checked after each."""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from kafka_node import protocol
from kafka_node.maelstrom.services import LinKV
from kafka_node.replication.partition import Role
from kafka_node.replication.placement import Placement, kv_key
from kafka_node.replication.timing import Timing
from kafka_node.wire.kv import LIN_KV
from kafka_node.wire.replica import PartitionState

from support.sim.checks import Checks, Violation
from support.sim.clients import Client
from support.sim.faults import Fault, Plan
from support.sim.memstore import MemStore
from support.sim.node import SimNode

#: Seconds a message between a client and a node takes (never lost: Maelstrom's clients are reliable).
CLIENT_LATENCY = 0.0002
#: Seconds an fsync takes, at least and at most.
FSYNC = (0.0001, 0.001)


@dataclass
class Outcome:
    """How a run went: the operations that completed, and lin-kv's changes."""

    plan: Plan
    ops: dict[str, int] = field(default_factory=dict)  # "send ok", "poll info", ...
    changes: list[tuple[float, int, PartitionState]] = field(default_factory=list)
    events: int = 0


class World:
    def __init__(self, plan: Plan, timing: Timing | None = None, calm: bool = False, trace_limit: int = 400) -> None:
        self.plan = plan
        self.timing = timing or Timing()
        self.calm = calm
        self.rng = random.Random(plan.seed * 7919 + 17)
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._order = itertools.count()
        self.kv = LinKV()
        ids = plan.node_ids
        factor = min(3, len(ids))
        self.placement = Placement(ids, factor, min(2, factor))
        self.checks = Checks(self.placement.partition)
        self._losses = 0  # times a store lost something (truncated, crashed) or was replaced
        self.stores = {node: self._new_store(node) for node in ids}
        self.nodes: dict[str, SimNode | None] = dict.fromkeys(ids)
        self.incarnations = dict.fromkeys(ids, 0)
        self.paused: dict[str, list[tuple[str, str, Any]]] = {}
        self.syncing: set[str] = set()
        self.interrupted: dict[str, list[tuple[float, float]]] = {node: [] for node in ids}  # paused or down
        self.cuts: set[tuple[str, str]] = set()
        self.kv_cut: set[str] = set()
        self.kv_late: set[str] = set()
        self.kv_lose: dict[str, int] = {}
        self.kv_errors: dict[str, int] = {}
        self.outcome = Outcome(plan)
        self.trace: deque[tuple[float, tuple[Any, ...]]] = deque(maxlen=trace_limit)
        self.unavailable: set[int] = set()  # partitions no eligible replica kept its file of
        self._messages: dict[str, int] = {}
        self._kv_state_seen: object = None
        self._hold_checked: tuple[Any, ...] = ()
        self._stepped: set[str] = set()  # nodes that took an event since the last check
        self._told: dict[int, int] = {}
        self._served: dict[int, tuple[int, str]] = {}  # partition -> the latest epoch a leader answered in, and who
        #: per partition, the replicas (with their file) lin-kv named eligible since clients were last told of it
        self._eligible_since_told: dict[int, set[tuple[str, str]]] = {}
        self._states: dict[int, PartitionState] = {}
        self._changed_at: dict[int, float] = {}  # when each partition's state last changed
        self._settled_at: float | None = None  # when every partition first had every replica in sync
        keys = [str(k) for k in range(plan.keys)]
        self.keys_by_partition: dict[int, list[str]] = {}
        for key in keys:
            self.keys_by_partition.setdefault(self.placement.partition(key), []).append(key)
        self.clients = [Client(self, f"c{i}", random.Random(plan.seed * 31 + i), keys) for i in range(plan.clients)]

    # --- the clock -------------------------------------------------------------------------------

    def at(self, when: float, action: Callable[..., None], *args: Any) -> None:
        heapq.heappush(self._queue, (when, next(self._order), action, args))

    def run(self) -> Outcome:
        plan = self.plan
        for node in plan.node_ids:
            self.at(self.rng.uniform(0, 0.01), self._start, node)
        for fault in plan.faults:
            self.at(fault.start, self._fault, fault)
        for client in self.clients:
            self.at(self.rng.uniform(0.3, 0.4), client.next)
        self.at(plan.load + 0.5, self._heal)
        end = plan.load + 0.5 + plan.heal
        self.at(plan.load + 1.5, self._final_polls)
        while self._queue and self._queue[0][0] <= end:
            when, _, action, args = heapq.heappop(self._queue)
            self.now = when
            action(*args)
            self.outcome.events += 1
            self._check()
        self._check_recovered()
        return self.outcome

    def note(self, *parts: Any) -> None:
        """A line of the trace (formatted only if it is ever shown)."""
        self.trace.append((self.now, parts))

    def trace_lines(self) -> list[str]:
        return [f"{when:9.4f} " + " ".join(_short(part) for part in parts) for when, parts in self.trace]

    def next_message(self, key: str) -> int:
        """A message never sent to `key` before (values unique per key, as Maelstrom's)."""
        self._messages[key] = self._messages.get(key, 0) + 1
        return self._messages[key]

    def outcome_count(self, op: str, outcome: str) -> None:
        name = f"{op} {outcome}"
        self.outcome.ops[name] = self.outcome.ops.get(name, 0) + 1

    # --- nodes -----------------------------------------------------------------------------------

    def _new_store(self, node: str) -> MemStore:
        file_id = f"{node}.{self.rng.getrandbits(32):08x}"
        self._losses += 1
        return MemStore(file_id, self.placement.partition, on_append=self._stored, on_loss=self._lost)

    def _lost(self) -> None:
        self._losses += 1

    def _stored(self, store: MemStore, pid: int, entries: list[Any]) -> None:
        self.checks.stored(store, pid, entries)

    def _start(self, node_id: str) -> None:
        if self.nodes[node_id] is not None:
            return
        self.incarnations[node_id] += 1
        incarnation = self.incarnations[node_id]
        self.note(f"{node_id} starts (incarnation {incarnation}, file {self.stores[node_id].file_id})")

        def send(dest: str, kind: str, payload: Any) -> None:
            self.send(node_id, dest, kind, payload)

        self.nodes[node_id] = SimNode(node_id, incarnation, self.placement, self.timing, self.stores[node_id], self.now,
                                      send, random.Random(self.rng.getrandbits(32)), self._replied)
        self._stepped.add(node_id)
        self.at(self.now + self.rng.uniform(0, self.timing.tick), self._tick, node_id, incarnation)

    def _replied(self, node: str, request: Any, body: Any, epochs: dict[int, int]) -> None:
        """A node's reply leaves it: what it promised is settled, whether or not the client hears;
        and a read comes from the latest leader of each partition it read (no leader of a later
        epoch had acknowledged or read anything before it). A write's acknowledgement may come
        late from a deposed leader: every replica able to lead after it held the write first."""
        for pid, epoch in epochs.items():
            latest = self._served.get(pid, (0, ""))
            if epoch < latest[0] and request.op in ("poll", "list"):
                raise Violation(f"{node}, leader of partition {pid} in epoch {epoch}, answered a {request.op} after "
                                f"{latest[1]}, its leader in epoch {latest[0]}, had answered one")
            if epoch > latest[0]:
                self._served[pid] = (epoch, node)
        if isinstance(body, protocol.SendOk):
            self.checks.settle(request.args["key"], body.offset, request.args["msg"], "acknowledged by a node")
        elif isinstance(body, protocol.PollOk):
            for key, entries in msgspec.json.decode(body.msgs).items():
                for offset, msg in entries:
                    self.checks.settle(key, offset, msg, "read by a node")

    def alive(self, node_id: str, incarnation: int | None = None) -> SimNode | None:
        node = self.nodes.get(node_id)
        if node is None or (incarnation is not None and node.incarnation != incarnation):
            return None
        return node

    def _tick(self, node_id: str, incarnation: int) -> None:
        node = self.alive(node_id, incarnation)
        if node is None:
            return
        if node_id not in self.paused:
            node.tick(self.now)
            self._stepped.add(node_id)
        self.at(self.now + self.timing.tick, self._tick, node_id, incarnation)

    def _kill(self, node_id: str, lose_disk: bool = False) -> None:
        if self.nodes[node_id] is None:
            return
        self.note(f"{node_id} killed" + (" and its disk lost" if lose_disk else ""))
        self.nodes[node_id] = None
        self.paused.pop(node_id, None)
        self.syncing.discard(node_id)
        self.stores[node_id].crash()
        if lose_disk:
            self.stores[node_id] = self._new_store(node_id)
        self.interrupted[node_id].append((self.now, float("inf")))

    def _restart(self, node_id: str) -> None:
        if self.nodes[node_id] is not None:
            return
        spans = self.interrupted[node_id]
        if spans and spans[-1][1] == float("inf"):
            spans[-1] = (spans[-1][0], self.now)
        self._start(node_id)

    def _pause(self, node_id: str) -> None:
        if self.nodes[node_id] is not None and node_id not in self.paused:
            self.note(f"{node_id} paused")
            self.paused[node_id] = []
            self.interrupted[node_id].append((self.now, float("inf")))

    def _resume(self, node_id: str) -> None:
        queued = self.paused.pop(node_id, None)
        node = self.nodes[node_id]
        if queued is None or node is None:
            return
        spans = self.interrupted[node_id]
        spans[-1] = (spans[-1][0], self.now)
        self.note(f"{node_id} resumed with {len(queued)} messages waiting")
        if queued:
            node.receive(queued, self.now)  # everything that came meanwhile, read at once
        node.tick(self.now)
        self._stepped.add(node_id)
        self._sync_if_needed(node_id)

    def _sync_if_needed(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node is None or node_id in self.syncing or node_id in self.paused:
            return
        store = node.store
        if store.commits > store.durable:
            self.syncing.add(node_id)
            self.at(self.now + self.rng.uniform(*FSYNC), self._synced, node_id, node.incarnation, store.commits)

    def _synced(self, node_id: str, incarnation: int, upto: int) -> None:
        self.syncing.discard(node_id)
        node = self.alive(node_id, incarnation)
        if node is None:
            return
        if node_id in self.paused:  # a stopped process finishes nothing: the sync returns on waking
            self.syncing.add(node_id)
            self.at(self.now + self.timing.tick, self._synced, node_id, incarnation, upto)
            return
        node.synced(upto)
        self._stepped.add(node_id)

    # --- the network -----------------------------------------------------------------------------

    def send(self, src: str, dest: str, kind: str, payload: Any) -> None:
        if kind in ("reply", "client"):  # clients' links: quick, never lost
            self.at(self.now + CLIENT_LATENCY, self._deliver, src, dest, kind, payload)
            return
        plan, rng = self.plan, self.rng
        if plan.drop and rng.random() < plan.drop:
            self.note("lost", src, "->", dest, payload)
            return
        # Replicas' messages and lin-kv's may arrive twice; a request one node sends on to another
        # is delivered once, as Maelstrom's network and TCP deliver it (the workload's sends are
        # not idempotent: a second delivery would be a second send)
        twice = kind == "wire" and plan.duplicate and rng.random() < plan.duplicate
        for _ in range(2 if twice else 1):
            self.at(self.now + self._delay(), self._deliver, src, dest, kind, payload)

    def _delay(self) -> float:
        plan, rng = self.plan, self.rng
        delay = rng.expovariate(1 / plan.latency)
        if plan.tail and rng.random() < plan.tail:
            delay *= rng.uniform(10, 300)
        return delay

    def _deliver(self, src: str, dest: str, kind: str, payload: Any) -> None:
        if dest == LIN_KV:
            self._lin_kv(src, payload)
            return
        if dest.startswith("c"):
            self.clients[int(dest[1:])].answered(payload)
            return
        if (src, dest) in self.cuts or (src == LIN_KV and dest in self.kv_cut):
            self.note("cut", src, "->", dest, payload)
            return
        node = self.nodes.get(dest)
        if node is None:
            return
        self.note(src, "->", dest, kind, payload)
        if dest in self.paused:
            self.paused[dest].append((src, kind, payload))
            return
        node.receive([(src, kind, payload)], self.now)
        self._stepped.add(dest)
        self._sync_if_needed(dest)

    def _lin_kv(self, src: str, line: bytes) -> None:
        if src in self.kv_cut:
            self.note("cut", src, "-> lin-kv", line)
            return
        body = msgspec.json.decode(line)["body"]
        if self.kv_errors.get(src):  # an error in place of the answer: the request dropped (11), or applied (13)
            self.kv_errors[src] -= 1
            applied = self.rng.random() < 0.5
            if applied:
                self.kv.handle(src, body)
            reply = {"type": "error", "code": 13 if applied else 11, "text": "lin-kv failed"}
        else:
            reply = self.kv.handle(src, body)
        self.note(src, "-> lin-kv", line, "=>", reply)
        if reply is None:
            return
        if self.kv_lose.get(src):
            self.kv_lose[src] -= 1
            self.note("lin-kv's reply to", src, "lost")
            return
        answer = msgspec.json.encode({"src": LIN_KV, "dest": src, "body": {**reply, "in_reply_to": body["msg_id"]}})
        late = self.rng.uniform(self.timing.kv_timeout, 2 * self.timing.kv_timeout) if src in self.kv_late else 0.0
        self.at(self.now + self._delay() + late, self._deliver, LIN_KV, src, "wire", answer)

    # --- faults ----------------------------------------------------------------------------------

    def _fault(self, fault: Fault) -> None:
        self.note(f"fault: {fault}")
        node, end = fault.node, fault.start + fault.length
        others = [n for n in self.plan.node_ids if n != node]
        if fault.kind == "cut-link":
            self.cuts.add((node, fault.other))
            self.at(end, self.cuts.discard, (node, fault.other))
        elif fault.kind == "isolate":
            links = {(node, other) for other in others} | {(other, node) for other in others}
            self.cuts |= links
            self.at(end, self.cuts.difference_update, links)
        elif fault.kind == "kv-cut":
            self.kv_cut.add(node)
            self.at(end, self.kv_cut.discard, node)
        elif fault.kind == "kv-lose":
            self.kv_lose[node] = self.kv_lose.get(node, 0) + self.rng.randint(1, 3)
        elif fault.kind == "kv-error":
            self.kv_errors[node] = self.kv_errors.get(node, 0) + self.rng.randint(1, 3)
        elif fault.kind == "kv-late":
            self.kv_late.add(node)
            self.at(end, self.kv_late.discard, node)
        elif fault.kind in ("pause", "stall"):  # a stalled loop is a paused process, as its peers see it
            self._pause(node)
            self.at(end, self._resume, node)
        elif fault.kind in ("kill", "wipe"):
            self._kill(node, lose_disk=fault.kind == "wipe")
            self.at(end, self._restart, node)
        elif fault.kind == "restart-twice":
            self._kill(node)
            self.at(fault.start + fault.length / 3, self._restart, node)
            self.at(fault.start + 2 * fault.length / 3, self._kill, node)
            self.at(end, self._restart, node)

    def _heal(self) -> None:
        self.note("healed: every fault over")
        self.cuts.clear()
        self.kv_cut.clear()
        self.kv_late.clear()
        self.kv_lose.clear()
        self.kv_errors.clear()
        for node in self.plan.node_ids:
            self._resume(node)
            self._restart(node)

    def _final_polls(self) -> None:
        """As Maelstrom's final phase: every client replaced (what it waited for is forgotten),
        then polling every key from the start until the run ends."""
        for client in self.clients:
            client.final = True
            client.replace()
            client.next()

    # --- the invariants --------------------------------------------------------------------------

    def _check(self) -> None:
        for node_id in self._stepped:  # only a node that took an event can have begun to lead
            node = self.nodes.get(node_id)
            if node is not None:
                for pid, machine in node.shell.machines.items():
                    if machine.lead is not None:
                        self.checks.led(pid, machine.lead.epoch, node_id, node.incarnation)
        self._stepped.clear()
        state = self.kv.state
        if state is not self._kv_state_seen:
            self._kv_state_seen = state
            for pid in range(self.placement.partitions):
                raw = state.data.get(msgspec.json.encode(kv_key(pid)))
                if raw is None:
                    continue
                partition = msgspec.convert(raw, PartitionState)
                before = self._states.get(pid)
                if before != partition:
                    self._states[pid] = partition
                    self._changed_at[pid] = self.now
                    self.outcome.changes.append((self.now, pid, partition))
                    # lin-kv's latest word on a replica's file is the one that counts: a file it
                    # named no longer (another took its place) is not eligible any more
                    self._eligible_since_told[pid] = {(n, f) for n, f in self._eligible_since_told.get(pid, ())
                                                      if partition.files.get(n, f) == f}
                    self._calm_change(pid, partition)
                    if before is not None and _given_up(before, partition):
                        # given up to acknowledge a write it lacks: it may rightly never lead again,
                        # even if that write then never was acknowledged (its leader died first)
                        gone = set(before.elr) - set(partition.elr)
                        self._eligible_since_told[pid] = {(n, f) for n, f in self._eligible_since_told.get(pid, ())
                                                          if n not in gone}
        # what replicas must hold changes only with lin-kv's state, what clients were told, or a
        # store losing something (or a new one): look again only then
        mark = (id(state), len(self.checks.ledger.settled), self._losses)
        if mark == self._hold_checked:
            return
        self._hold_checked = mark
        for pid, partition in self._states.items():
            self.checks.eligible_hold(pid, partition, self.stores)
            told = len(self.checks.ledger.settled_order.get(pid, ()))
            if self._told.get(pid) != told:  # since clients were last told of this partition: who was eligible
                self._told[pid] = told
                self._eligible_since_told[pid] = set()
            self._eligible_since_told[pid] |= {(n, self.stores[n].file_id) for n in partition.eligible
                                               if partition.files.get(n, self.stores[n].file_id) == self.stores[n].file_id}

    def _calm_change(self, pid: int, state: PartitionState) -> None:
        """On a calm network, once every partition has every replica in sync and is led by its
        preferred replica, nothing changes."""
        if not self.calm:
            return
        if self._settled_at is not None:
            raise Violation(f"a calm run changed partition {pid}'s leadership at {self.now:.3f}s: {state}")
        everyone = all(len(s.isr) == len(self.placement.replicas(p)) and s.leader == self.placement.replicas(p)[0]
                       for p, s in self._states.items())
        if everyone and len(self._states) == self.placement.partitions:
            self._settled_at = self.now

    def _check_recovered(self) -> None:
        """After the faults, every partition that still has an eligible replica with its file
        is led, with every replica back in sync, and every acknowledged message was read."""
        for pid in range(self.placement.partitions):
            state = self._states.get(pid)
            if state is None:
                raise Violation(f"partition {pid} never got a state in lin-kv")
            intact = [n for n in state.eligible if state.files.get(n, self.stores[n].file_id) == self.stores[n].file_id]
            if not intact:
                holder = self._holds_everything(pid)
                if holder is not None:
                    raise Violation(f"partition {pid} is left with no replica eligible to lead ({state}) although "
                                    f"{holder}, eligible since clients were last told of it, holds every message they "
                                    f"were told of")
                self.note(f"partition {pid}: no eligible copy of what clients were told survives; unavailable, as it "
                          "must be")
                self.unavailable.add(pid)
                continue
            leader = self.nodes.get(state.leader) if state.leader else None
            machine = leader.shell.machines.get(pid) if leader else None
            if machine is None or machine.role is not Role.LEADER or machine.lead is None or machine.lead.epoch != state.epoch:
                raise Violation(f"partition {pid} has no leader serving after the faults ended: {state}")
            # Drops go on after the faults end, so a follower may rightly leave the set at the very
            # end; it must be back within the time a leader takes to probe it and ask lin-kv.
            settling = self.now - self._changed_at.get(pid, 0.0) < self.timing.lag + self.timing.resend + self.timing.kv_timeout
            if sorted(state.isr) != sorted(self.placement.replicas(pid)) and not settling:
                raise Violation(f"partition {pid}'s replicas are not all back in sync after the faults ended: {state}")
            # The preferred replica, in sync, takes its lead back `rebalance` after it learns of it: at
            # once, or, the news lost (drops go on after the faults end), at its next read of lin-kv;
            # then its compare-and-set, lost too perhaps, and read again; then the former leader's lease.
            preferred = self.placement.replicas(pid)[0]
            taking_back = self.now - self._changed_at.get(pid, 0.0) < (self.timing.reread + self.timing.rebalance
                                                                        + 2 * self.timing.kv_timeout
                                                                        + self.timing.lease + self.timing.tick)
            if state.leader != preferred and preferred in state.isr and not taking_back:
                raise Violation(f"partition {pid} is not led by its preferred replica {preferred}, in sync since "
                                f"{self._changed_at.get(pid, 0.0):.3f}: {state}")
        ledger = self.checks.ledger
        unseen = [(key, offset, msg) for key, offset, msg in ledger.acked
                  if (key, offset) not in ledger.polled and self.placement.partition(key) not in self.unavailable]
        if unseen:
            raise Violation(f"unseen: {len(unseen)} acknowledged messages no poll returned, e.g. {unseen[:5]}")

    def _holds_everything(self, pid: int) -> str | None:
        """A replica of `pid` that lin-kv named eligible since clients were last told of the
        partition (so it never was given up for a write acknowledged without it), with the same
        file still, whose durable log holds every message clients were told of, if any."""
        ledger = self.checks.ledger
        told = [(key, offset, ledger.settled[(key, offset)]) for key, offset in ledger.settled_order.get(pid, [])]
        for node, file in sorted(self._eligible_since_told.get(pid, ())):
            if self.stores[node].file_id != file:
                continue
            keys = self.stores[node].durable_state.keys
            if all(offset < len(keys.get(key, ())) and msgspec.json.decode(keys[key][offset].msg) == msg
                   for key, offset, msg in told):
                return node
        return None

    def interrupted_between(self, node: str, start: float, end: float) -> bool:
        return any(s < end and e > start for s, e in self.interrupted[node])


def _given_up(before: PartitionState, after: PartitionState) -> bool:
    """Whether `after` only gives up eligible replicas out of the in-sync set (its leader is to
    acknowledge a write they lack)."""
    return ((before.leader, before.epoch, before.isr) == (after.leader, after.epoch, after.isr)
            and set(after.elr) < set(before.elr))


def _short(payload: Any) -> str:
    if isinstance(payload, bytes | str):
        text = payload.decode() if isinstance(payload, bytes) else payload
    elif isinstance(payload, int | float):
        text = repr(payload)
    else:
        try:  # messages and requests as JSON: the same text in every process
            name = "" if isinstance(payload, dict | list) else type(payload).__name__
            text = f"{name}{msgspec.json.encode(payload).decode()}"
        except TypeError:
            text = repr(payload)
    return text if len(text) <= 240 else text[:240] + "..."
