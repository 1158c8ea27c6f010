"""One partition replicated on this node, as a state machine free of I/O and clock (etcd raft's
`Step` and `Ready`): events in, with the time they happen at; what to persist, send, ask lin-kv
and release out. Its role changes in one place, `_become`; lin-kv's states are taken newest first."""

from __future__ import annotations

import dataclasses
import logging
from enum import Enum

from kafka_node.replication import membership
from kafka_node.replication.epochs import EpochCache
from kafka_node.replication.events import (
    Event,
    FromFollower,
    FromLeader,
    KvAnswered,
    KvCall,
    KvExpired,
    Ready,
    Tick,
    Told,
    Wrote,
)
from kafka_node.replication.following import Follower, FollowState
from kafka_node.replication.leading import Leading
from kafka_node.replication.ports import PartitionLog
from kafka_node.replication.timing import Timing
from kafka_node.wire import Sent
from kafka_node.wire.kv import KEY_DOES_NOT_EXIST
from kafka_node.wire.replica import Leadership, PartitionState, ReplicateRefused

logger = logging.getLogger("kafka_node.replication")


class Role(Enum):
    STARTING = "starting"  # this incarnation has not yet read what lin-kv says of the partition
    FOLLOWER = "follower"
    CANDIDATE = "candidate"  # asked lin-kv for the lead
    LEADER_STARTING = "leader-starting"  # leads; waits for every in-sync follower to hold its log
    LEADER = "leader"


class PartitionMachine:
    """One partition this node holds a replica of. `step` takes an event; `ready` gives what the
    steps since the last call produced. Calls to lin-kv go one at a time; a compare-and-set whose
    answer never came blocks every other until a read shows whether it applied (and it is sent
    again, the same, while the state it started from is still lin-kv's)."""

    def __init__(self, pid: int, me: str, replicas: list[str], nodes: list[str], min_insync: int, timing: Timing,
                 log: PartitionLog, now: float) -> None:
        self.pid = pid
        self.me = me
        self.replicas = replicas
        self.nodes = nodes  # every node of the cluster: each hears of changes this machine makes
        self.min_insync = min_insync
        self.timing = timing
        self.log = log
        self.file = log.file_id
        self.role = Role.STARTING
        self.known: PartitionState | None = None  # lin-kv's newest state seen (by version)
        self.missing = False  # a read found no state: nobody created the partition's yet
        self.kv: KvCall | None = None  # the call in flight
        self.uncertain: KvCall | None = None  # a compare-and-set whose outcome is unknown
        self.kv_expiries = 0  # calls in a row that went unanswered
        self.reread_at = now
        self.epochs = EpochCache(*log.epoch_ranges(pid))
        self.follower = Follower(pid, self.file, now)
        self.lead: Leading | None = None
        #: Epochs this incarnation asked lin-kv to let it lead: only those may it lead as named.
        self.proposed_epochs: set[int] = set()
        self._ready = Ready()

    # --- the outside's view -----------------------------------------------------------------------

    def ready(self) -> Ready:
        """What the steps since the last call produced."""
        ready, self._ready = self._ready, Ready()
        return ready

    def leader(self) -> str | None:
        """Who this replica knows leads the partition (itself, while it does)."""
        if self.lead is not None:
            return self.me
        if self.role is Role.STARTING:
            return self.known.leader if self.known else None
        return self.follower.state.leader

    def refusal(self, writes: bool, durable: int, now: float) -> str | None:
        """Why a request to the partition may not be applied here now (None: it may)."""
        lead = self.lead
        if lead is None:
            return f"not the leader of partition {self.pid} (its leader: {self.leader() or 'none known'})"
        if self.role is not Role.LEADER or now < lead.serve_after:  # serve_after: a former leader may still read
            return f"partition {self.pid}'s leader is starting epoch {lead.epoch}"
        if writes:
            if not lead.enough_in_sync():
                in_sync = min(len(lead.state.isr), len(lead.proposal.isr) if lead.proposal else len(lead.state.isr))
                return (f"partition {self.pid} has {in_sync} replicas in sync, fewer than --min-insync "
                        f"{self.min_insync}")
        elif not lead.lease_holds(now) or durable < lead.ready_at:
            return f"partition {self.pid}'s leader cannot show it still leads (a follower has not heard it lately)"
        return None

    def stamp(self) -> tuple[int, int, int]:
        assert self.lead is not None
        return self.lead.stamp()

    def checkpoint(self) -> tuple[FollowState, EpochCache]:
        """What a follower's transaction changes in memory, to put back if it fails."""
        return dataclasses.replace(self.follower.state), self.epochs.copy()

    def rollback(self, checkpoint: tuple[FollowState, EpochCache]) -> None:
        """Back to `checkpoint`: the transaction holding what was taken since failed."""
        self.follower.state, self.epochs = dataclasses.replace(checkpoint[0]), checkpoint[1].copy()

    # --- events -----------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        self._read(now)

    def step(self, event: Event) -> None:
        if isinstance(event, Tick):
            self._tick(event)
        elif isinstance(event, FromLeader):
            self._from_leader(event)
        elif isinstance(event, FromFollower):
            self._from_follower(event)
        elif isinstance(event, Wrote):
            if self.lead is not None:
                self._ready.send += self.lead.wrote(event.commit, event.batch, event.committed, event.now)
                self._high_watermark()
        elif isinstance(event, Told):
            self._learn(event.state)
            self._act(event.now)
        elif isinstance(event, KvAnswered):
            self._answered(event)
        elif isinstance(event, KvExpired):
            self._expired(event)

    def _from_leader(self, event: FromLeader) -> None:
        message, lead = event.message, self.lead
        if lead is not None:
            if message.epoch <= lead.epoch:
                refused = ReplicateRefused(part=self.pid, epoch=lead.epoch, covers=message.covers, stale=True,
                                           file=self.file, sent=message.sent)
                self._ready.answers.append(Sent(self.me, event.src, refused))
                return
            self._become(Role.FOLLOWER, event.now, event.src, message.epoch)
        before = self.follower.state.leader, self.follower.state.epoch
        ops, answer = self.follower.take(event.src, message, self.epochs, event.now)
        self._ready.persist += ops
        self._ready.answers.append(Sent(self.me, event.src, answer))
        if (self.follower.state.leader, self.follower.state.epoch) != before:
            self._ready.led = (self.follower.state.leader, self.follower.state.epoch)

    def _from_follower(self, event: FromFollower) -> None:
        message, lead = event.message, self.lead
        if lead is None:
            return
        if message.epoch != lead.epoch:
            if message.epoch > lead.epoch:  # a newer epoch exists: ask lin-kv who leads it
                logger.info("partition %d: %s follows epoch %d; asking lin-kv", self.pid, event.src, message.epoch)
                self._read(event.now)
            return
        self._ready.send += lead.answered(event.src, message, event.now)
        self._high_watermark()

    def _tick(self, tick: Tick) -> None:
        now, timing = tick.now, self.timing
        lead = self.lead
        if lead is not None:
            self._ready.send += lead.tick(now)
            if self.kv is None and self.uncertain is None and lead.proposal is None:
                change = lead.isr_change(tick.heard_until)
                if change is not None:
                    lead.proposal = change
                    self._cas(change)
            self._high_watermark()
            return
        state = self.known
        if self.kv is not None or self.uncertain is not None:
            return
        silent = state is None or state.leader is None or tick.heard_until - self.follower.heard >= timing.election
        if (self.role is Role.FOLLOWER and silent and state is not None and state.leader != self.me
                and state.holds(self.me, self.file)):
            logger.info("partition %d: no word from %s, leader of epoch %d; asking to lead", self.pid,
                        state.leader or "anyone", state.epoch)
            self._ask_to_lead(membership.elected(state, self.me, self.file))
            self._become(Role.CANDIDATE, now)
        elif (silent or self.role is Role.STARTING) and now >= self.reread_at:
            # what this replica knows may be old (news of a change lost on the way): lin-kv says
            self.reread_at = now + timing.kv_retry
            self._read(now)

    # --- lin-kv -----------------------------------------------------------------------------------

    def _read(self, now: float) -> None:
        if self.kv is None:
            self.kv = KvCall(self.pid)
            self._ready.kv.append(self.kv)

    def _cas(self, to: PartitionState) -> None:
        if self.kv is None:
            self.kv = KvCall(self.pid, self.known, to)
            self._ready.kv.append(self.kv)

    def _ask_to_lead(self, to: PartitionState) -> None:
        self.proposed_epochs.add(to.epoch)
        self._cas(to)

    def _answered(self, event: KvAnswered) -> None:
        call = event.call
        if call is not self.kv:
            return
        self.kv = None
        self.kv_expiries = 0
        now = event.now
        if not call.is_cas:
            if event.state is not None:
                self._learn(event.state)
            elif event.error == KEY_DOES_NOT_EXIST and self.known is None:
                self.missing = True
            else:
                self.reread_at = now + self.timing.kv_retry
            if self.uncertain is not None and self.kv is None and self._unapplied(self.uncertain, event):
                self.kv = KvCall(self.pid, self.uncertain.from_, self.uncertain.to)  # the same, once more
                self._ready.kv.append(self.kv)
                return
        elif event.error is None:
            assert call.to is not None
            to = call.to
            logger.info("partition %d: lin-kv set leader=%s epoch=%d isr=%s elr=%s version=%d", self.pid, to.leader,
                        to.epoch, ",".join(to.isr), ",".join(to.elr), to.version)
            if self._learn(call.to):
                self._ready.send += [Sent(self.me, node, Leadership(part=self.pid, state=call.to))
                                     for node in self.nodes if node != self.me]
        else:
            # Refused (22: lin-kv holds another state than `from`), or any other error: the
            # answer may be a copy of this request's (sent twice by the network) arriving after
            # the one that applied, so whether it applied is known only once a read shows lin-kv
            # past `from`; until then the leader waits on both in-sync sets.
            self.uncertain = call
            self._resolve()
            self._read(now)
            return
        self._act(now)

    def _unapplied(self, call: KvCall, read: KvAnswered) -> bool:
        """Whether a read shows lin-kv still holds the state `call` changes from (so the call
        may still apply, or may have been lost): it is sent again."""
        if call.from_ is None:
            return read.state is None and read.error == KEY_DOES_NOT_EXIST
        return read.state is not None and read.state.version == call.from_.version

    def _expired(self, event: KvExpired) -> None:
        call = event.call
        if call is not self.kv:
            return
        self.kv = None
        self.kv_expiries += 1
        if call.is_cas:
            self.uncertain = call
            self._resolve()
        if self.lead is not None and self.kv_expiries >= 2:
            logger.warning("partition %d: lin-kv has not answered twice in a row; no longer leading epoch %d",
                           self.pid, self.lead.epoch)
            self.proposed_epochs.discard(self.lead.epoch)
            self._become(Role.FOLLOWER, event.now)
        self._read(event.now)

    def _learn(self, state: PartitionState) -> bool:
        """Take `state` if it is newer than every one seen; whether it was."""
        if self.known is not None and state.version <= self.known.version:
            return False
        self.known = state
        self.missing = False
        self._resolve()
        self._ready.learned = state
        return True

    def _resolve(self) -> None:
        """Forget the compare-and-set of unknown outcome once lin-kv is known to have moved past
        the state it changes: it applied, or it never can now."""
        uncertain, known = self.uncertain, self.known
        if uncertain is not None and uncertain.to is not None and known is not None and known.version >= uncertain.to.version:
            self.uncertain = None

    # --- what the state calls for -----------------------------------------------------------------

    def _act(self, now: float) -> None:
        """Do what lin-kv's newest state calls for: lead as it names this replica (only an epoch
        this incarnation asked for), start a new epoch as a restarted leader, leave as a replica
        that lost its file, or follow."""
        state = self.known
        if state is None:
            if self.missing and self.kv is None and self.role is Role.STARTING:
                if self.me == self.replicas[0]:  # the partition's first leader creates its state
                    self._ask_to_lead(membership.created(self.me, self.file, self.epochs.last[1] + 1, self.replicas))
                else:
                    self.reread_at = now + self.timing.kv_retry
            return
        if self.me in state.eligible and not state.holds(self.me, self.file):
            if self.lead is not None or self.role is not Role.FOLLOWER:
                self._become(Role.FOLLOWER, now, None if state.leader == self.me else state.leader, state.epoch)
            logger.error("partition %d: lin-kv names this replica eligible with another file than its own: it lost "
                         "what it held; leaving the in-sync set", self.pid)
            self._cas(membership.forsaken(state, self.me))
            return
        if state.leader == self.me:
            if state.epoch in self.proposed_epochs:
                if self.lead is None or self.lead.epoch != state.epoch:
                    self._become(Role.LEADER_STARTING, now, self.me, state.epoch, created=state.version == 1)
                else:
                    self.lead.state = state
                    if self.lead.proposal is not None and state.version >= self.lead.proposal.version:
                        self.lead.proposal = None
                    self._high_watermark()
            elif self.kv is None:  # led by a former incarnation (or a call of one, applied late)
                logger.info("partition %d: lin-kv names this node leader of epoch %d; leading the next", self.pid,
                            state.epoch)
                if self.lead is not None:
                    self._become(Role.FOLLOWER, now)
                self._ask_to_lead(membership.resumed(state, self.me))
            return
        if self.lead is not None or self.role is Role.STARTING or (self.role is Role.CANDIDATE and self.kv is None):
            self._become(Role.FOLLOWER, now, state.leader, state.epoch)
        elif self.follower.follow(state.leader, state.epoch, now):
            self._ready.led = (state.leader, state.epoch)

    def _high_watermark(self) -> None:
        lead = self.lead
        if lead is None:
            return
        hw = lead.high_watermark()
        if hw is not None:
            self._ready.hw = hw
            if lead.ready and self.role is Role.LEADER_STARTING:
                self._become(Role.LEADER, 0.0)

    # --- roles ------------------------------------------------------------------------------------

    def _become(self, role: Role, now: float, leader: str | None = None, epoch: int | None = None,
                created: bool = False) -> None:
        """The one place a role changes. Leading an epoch: probe every follower. No longer
        leading: what waited for the in-sync set fails. Following: `leader` in `epoch`, if given."""
        lead = self.lead
        if lead is not None and role is not Role.LEADER:
            self._ready.deposed = True
            logger.info("partition %d: no longer leading epoch %d", self.pid, lead.epoch)
            self.lead = None
        self.role = role
        if role is Role.LEADER_STARTING:
            assert self.known is not None and epoch is not None
            # a leader this replica heard may go on reading under its lease until then
            serve_after = now if created else self.follower.heard + self.timing.lease
            self.follower.follow(self.me, epoch, now)
            self.lead = Leading(self.pid, self.me, self.known, self.replicas, self.log, self.epochs, self.timing,
                                self.min_insync, now, serve_after)
            logger.info("partition %d: leading epoch %d, in sync %s", self.pid, epoch, ",".join(self.known.isr))
            self._ready.send += [self.lead.probe(node, now) for node in self.lead.progress]
            self._ready.led = (self.me, epoch)
            self._high_watermark()
        elif role is Role.FOLLOWER and epoch is not None and self.follower.follow(leader, epoch, now):
            self._ready.led = (leader, epoch)
