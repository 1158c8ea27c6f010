"""Replication as the node sees it: this node's partition machines, its calls to lin-kv, who leads what
and what replies wait for; the node hands it messages and time, and takes what it produced."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from kafka_node.outbox import Held
from kafka_node.protocol import PeerReplyEnvelope
from kafka_node.replication.admission import WaitingRoom
from kafka_node.replication.directory import Directory
from kafka_node.replication.epochs import EpochCache
from kafka_node.replication.events import FromFollower, FromLeader, KvAnswered, KvCall, KvExpired, Tick, Told, Wrote
from kafka_node.replication.following import FollowState
from kafka_node.replication.kvclient import KvAnswer, KvClient
from kafka_node.replication.ledger import AckLedger
from kafka_node.replication.partition import PartitionMachine
from kafka_node.replication.placement import Placement
from kafka_node.replication.ports import ReplicaStore
from kafka_node.replication.timing import Timing
from kafka_node.wire import ReplicaEnvelope, Sent
from kafka_node.wire.kv import LIN_KV
from kafka_node.wire.replica import Leadership, Replicate, ReplicateOk, ReplicateRefused

logger = logging.getLogger("kafka_node.replication")


class Output(NamedTuple):
    """What replication produced: messages to send at once; replies for the outbox (followers'
    answers, each waiting for its commit to be durable, and clients' replies released or given
    up on); and the leads that moved away from a node, (former leader, partition)."""

    send: list[Sent]
    held: list[Held]
    moved: list[tuple[str, int]]


class Replication:
    """One node's part in replication."""

    def __init__(self, me: str, placement: Placement, store: ReplicaStore, timing: Timing, now: float,
                 rng: random.Random | None = None) -> None:
        self.me = me
        self.placement = placement
        self.store = store
        self.timing = timing
        nodes = list(placement.node_ids)
        self.machines = {pid: PartitionMachine(pid, me, placement.replicas(pid), nodes, placement.min_insync, timing,
                                               store, now)
                         for pid in placement.parts_of(me)}
        self.kv = KvClient(me, timing.kv_timeout, rng)
        self.directory = Directory()
        self.ledger = AckLedger(timing.failed_memory)
        self.waiting: WaitingRoom[Any] = WaitingRoom(timing.leader_wait, timing.peer_wait)
        self._reading: dict[int, KvCall] = {}  # partitions with no replica here: the read in flight
        self._reread_at = dict.fromkeys(range(placement.partitions), now)
        self._send: list[Sent] = []
        self._held: list[Held] = []
        self._persisted: dict[int, int] = {}  # partition -> the last commit a follower's writes to it made
        self._next_tick = now

    # --- time and messages --------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Ask lin-kv for every partition's state (routing needs them all)."""
        for machine in self.machines.values():
            machine.start(now)
        for pid in self._others():
            self._read_other(pid, now)
        self._collect(now)

    def take_own(self, decoded: Sequence[Any], now: float) -> list[Any]:
        """Step on the other replicas' messages and lin-kv's replies among `decoded`; the rest, in order."""
        own: list[Any] = []
        rest: list[Any] = []
        for envelope in decoded:
            (own if _is_own(envelope) else rest).append(envelope)
        if own:
            self.step(own, now)
        return rest

    def step(self, envelopes: Sequence[Any], now: float) -> None:
        """Other replicas' messages and lin-kv's replies, read at `now`: the leaders' batches
        taken in one transaction."""
        checkpoints: dict[int, tuple[FollowState, EpochCache]] = {}
        for envelope in envelopes:
            src, body = envelope.src, envelope.body
            if src == LIN_KV:
                answer = self.kv.answered(body.in_reply_to, body) if hasattr(body, "in_reply_to") else None
                if answer is not None:
                    self._kv_answered(answer, now)
                continue
            if src not in self.placement.node_ids or src == self.me:
                logger.warning("ignored a %s from %s, which is not another node of the cluster",
                               body.__struct_config__.tag, src)
                continue
            machine = self.machines.get(body.part)
            if isinstance(body, Leadership):
                if machine is not None:
                    machine.step(Told(body.state, now))
                else:
                    self.directory.learned(body.part, body.state)
            elif machine is None:
                continue  # not a replica of it here
            elif isinstance(body, Replicate):
                if body.part not in checkpoints:
                    checkpoints[body.part] = machine.checkpoint()
                machine.step(FromLeader(src, body, now))
            elif isinstance(body, ReplicateOk | ReplicateRefused):
                machine.step(FromFollower(src, body, now))
        self._collect(now, checkpoints)

    def tick(self, now: float, heard_until: float) -> None:
        """Timers: heartbeats, catch-ups, in-sync set changes, elections, lin-kv calls given up
        on, replies given up on. `heard_until`: the time up to which input has been read (what
        came later is not read yet, so silence counts only up to then)."""
        for call in self.kv.expired(now):
            machine = self.machines.get(call.pid)
            if machine is not None:
                machine.step(KvExpired(call, now))
            elif self._reading.get(call.pid) is call:
                del self._reading[call.pid]
        tick = Tick(now, heard_until)
        for machine in self.machines.values():
            machine.step(tick)
        for pid in self._others():
            if pid not in self._reading and now >= self._reread_at[pid]:
                self._read_other(pid, now)
        self.ledger.expire(now)
        self._collect(now)
        self._next_tick = now + self.timing.tick

    def next_deadline(self) -> float:
        return self._next_tick

    def _others(self) -> Iterable[int]:
        return (pid for pid in range(self.placement.partitions) if pid not in self.machines)

    def _read_other(self, pid: int, now: float) -> None:
        call = KvCall(pid)
        self._reading[pid] = call
        self._reread_at[pid] = now + (self.timing.reread if self.directory.state(pid) else self.timing.kv_retry)
        self._send.append(self.kv.send(call, now))

    def _kv_answered(self, answer: KvAnswer, now: float) -> None:
        call = answer.call
        machine = self.machines.get(call.pid)
        if machine is not None:
            machine.step(KvAnswered(call, answer.state, answer.error, now))
        elif self._reading.get(call.pid) is call:
            del self._reading[call.pid]
            if answer.state is not None:
                self.directory.learned(call.pid, answer.state)

    def _collect(self, now: float, checkpoints: Mapping[int, tuple[FollowState, EpochCache]] | None = None) -> None:
        """Take every machine's output: the followers' writes persisted in one transaction
        (their answers wait for it), lin-kv calls numbered, watermarks and depositions to the
        ledger, leads to the directory."""
        persist, answers, persisting, send = [], [], [], []
        for pid, machine in self.machines.items():
            ready = machine.ready()
            if not ready:
                continue
            send += ready.send
            send += [self.kv.send(call, now) for call in ready.kv]
            persist += ready.persist
            answers += ready.answers
            if ready.persist:
                persisting.append(pid)
            if ready.deposed:
                self.ledger.deposed(pid, now)
            if ready.hw is not None:
                self.ledger.advance(pid, ready.hw)
            if ready.learned is not None:
                self.directory.led(pid, ready.learned.leader, ready.learned.epoch, newest=True)
            if ready.led is not None:
                self.directory.led(pid, *ready.led)
        persisted_now: dict[int, int] = {}
        if persist:
            try:
                persisted_now = dict.fromkeys(persisting, self.store.persist(persist))
            except Exception:
                logger.exception("could not store a leader's batches; they will be sent again")
                for pid, checkpoint in (checkpoints or {}).items():
                    self.machines[pid].rollback(checkpoint)
                answers, send = [], [message for message in send if not isinstance(message.body, Replicate)]
            self._persisted.update(persisted_now)
        self._send += send
        self._held += [Held(answer, self._answer_waits_for(_partition(answer))) for answer in _cumulative(answers)]
        self._held += self.ledger.take()

    def _answer_waits_for(self, pid: int) -> int:
        """The commit a follower's answer about `pid` waits for: an answer says what the follower
        holds durably, so it waits for the last transaction that wrote to the partition, this
        step's or an earlier one not yet synced."""
        return self._persisted.get(pid, 0)

    # --- what the node may do ------------------------------------------------------------------

    def leader_of(self, key: str) -> str | None:
        pid = self.placement.partition(key)
        machine = self.machines.get(pid)
        return machine.leader() if machine is not None else self.directory.leader(pid)

    def refusal(self, keys: Iterable[str], writes: bool, durable: int, now: float) -> str | None:
        """Why a request naming `keys` may not be applied here now (None: it may)."""
        for pid in {self.placement.partition(key) for key in keys}:
            machine = self.machines.get(pid)
            if machine is None:
                return f"not a replica of partition {pid} (its leader: {self.directory.leader(pid) or 'none known'})"
            if (reason := machine.refusal(writes, durable, now)) is not None:
                return reason
        return None

    def stamp(self, key: str) -> tuple[int, int, int]:
        """(partition, seq, epoch) of the batch a transaction now writing to `key` makes."""
        return self.machines[self.placement.partition(key)].stamp()

    def wrote(self, commit: int, sent: Iterable[str], committed: Iterable[str], now: float) -> None:
        """A commit of client writes (sends to `sent`, committed offsets of `committed`): it
        waits for each partition's in-sync set, which gets it at once."""
        sent_pids = {self.placement.partition(key) for key in sent}
        offsets: dict[int, dict[str, int]] = {}
        if committed := list(committed):
            for key, offset in self.store.committed_offsets(committed).items():
                offsets.setdefault(self.placement.partition(key), {})[key] = offset
        pids = {pid for pid in sent_pids | offsets.keys() if self.machines[pid].lead is not None}
        self.ledger.expect(commit, pids, now + self.timing.replication)
        for pid in pids:
            self.machines[pid].step(Wrote(commit, pid in sent_pids, offsets.get(pid, {}), now))
        self._collect(now)

    def hw_of(self, pid: int) -> int:
        """The newest of this leader's commits the partition's in-sync set holds (0 elsewhere)."""
        machine = self.machines.get(pid)
        return machine.lead.hw if machine is not None and machine.lead is not None else 0

    def hold(self, held: list[Held]) -> list[Held]:
        """Keep the replies that wait for their commit to be held by the in-sync sets; the
        others, which may leave now."""
        return self.ledger.hold(held)

    def ready(self) -> Output:
        """Everything produced since last asked."""
        out = Output(self._send, self._held, self.directory.take_moves())
        self._send, self._held = [], []
        return out


def _is_own(envelope: Any) -> bool:
    """Whether a decoded line is replication's: another replica's message, or lin-kv's reply."""
    return isinstance(envelope, ReplicaEnvelope) or (isinstance(envelope, PeerReplyEnvelope) and envelope.src == LIN_KV)


def _cumulative(answers: list[Sent]) -> list[Sent]:
    """A follower's answers to one leader for one partition: acknowledgements are cumulative,
    so only the one covering the most is sent (refusals all are)."""
    best: dict[tuple[str, int], int] = {}  # (leader, partition) -> the answer covering the most
    for at, answer in enumerate(answers):
        body = answer.body
        if isinstance(body, ReplicateOk):
            known = best.get((answer.dest, body.part))
            if known is None or body.covers >= answers[known].body.covers:  # type: ignore[union-attr]
                best[(answer.dest, body.part)] = at
    return [answer for at, answer in enumerate(answers)
            if not isinstance(answer.body, ReplicateOk) or best[(answer.dest, answer.body.part)] == at]


def _partition(answer: Sent) -> int:
    body = answer.body
    assert isinstance(body, ReplicateOk | ReplicateRefused)  # a follower's answer
    return body.part
