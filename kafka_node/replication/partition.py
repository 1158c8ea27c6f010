"""One partition replicated on this node, as a state machine free of I/O and clock (etcd raft's `Step`
and `Ready`): timed events in; what to persist, send, ask lin-kv and release out; roles change in `_become`."""

from __future__ import annotations

import dataclasses
import logging
from enum import Enum

from kafka_node.replication import insync, membership
from kafka_node.replication.epochs import EpochCache
from kafka_node.replication.events import (
    Event,
    FromFollower,
    FromLeader,
    KvAnswered,
    KvExpired,
    Ready,
    Tick,
    Told,
    Wrote,
)
from kafka_node.replication.following import Follower, FollowState
from kafka_node.replication.leading import Leading
from kafka_node.replication.linkv import Heard, LinKv
from kafka_node.replication.ports import PartitionLog
from kafka_node.replication.rebalance import PreferredLeader
from kafka_node.replication.timing import Timing
from kafka_node.wire import Sent
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
    steps since the last call produced. Its calls to lin-kv go through `lin` (`LinKv`), one at a
    time; its role is `role`, and while it leads, `lead` holds the epoch's state."""

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
        self.lin = LinKv(pid, now)
        self.epochs = EpochCache(*log.epoch_ranges(pid))
        self.follower = Follower(pid, self.file, now)
        self.lead: Leading | None = None
        #: Epochs this incarnation asked lin-kv to let it lead: only those may it lead as named.
        self.proposed_epochs: set[int] = set()
        self._rebalance = PreferredLeader(me, replicas[0], self.file, timing.rebalance)
        self._ready = Ready()

    # --- the outside's view -----------------------------------------------------------------------

    def ready(self) -> Ready:
        """What the steps since the last call produced."""
        ready, self._ready = self._ready, Ready()
        return ready

    @property
    def known(self) -> PartitionState | None:
        """lin-kv's newest state this replica has seen (by version)."""
        return self.lin.known

    def leader(self) -> str | None:
        """Who this replica knows leads the partition (itself, while it does)."""
        if self.lead is not None:
            return self.me
        if self.role is Role.STARTING:
            return self.known.leader if self.known else None
        return self.follower.state.leader

    def refusal(self, writes: bool, durable: int, now: float) -> str | None:
        """Why a request to the partition may not be applied here now (None: it may)."""
        if self.lead is None:
            return f"not the leader of partition {self.pid} (its leader: {self.leader() or 'none known'})"
        return self.lead.refusal(writes, durable, now)

    def stamp(self) -> tuple[int, int, int]:
        assert self.lead is not None
        return self.lead.stamp()

    def checkpoint(self) -> tuple[FollowState, EpochCache]:
        """What a follower's transaction changes in memory, to put back if it fails."""
        return dataclasses.replace(self.follower.state), self.epochs.copy()

    def rollback(self, checkpoint: tuple[FollowState, EpochCache]) -> None:
        """Back to `checkpoint`: the transaction holding what was taken since failed."""
        self.follower.state = dataclasses.replace(checkpoint[0])
        self.epochs.restore(checkpoint[1])  # in place: a leader begun meanwhile holds the same cache

    # --- events -----------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        self.lin.read(self._ready.kv)

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
                self._high_watermark(event.now)
        elif isinstance(event, Told):
            if self.lin.learn(event.state):
                self._ready.learned = event.state
            self._act(event.now)
        elif isinstance(event, KvAnswered):
            self._answered(event)
        elif isinstance(event, KvExpired):
            self._expired(event)

    def _from_leader(self, event: FromLeader) -> None:
        message, lead = event.message, self.lead
        if self.known is None:
            return  # a new incarnation takes nothing before lin-kv says which epoch is the latest (sent again)
        floor = max(self.known.epoch, lead.epoch if lead is not None else 0)
        if message.epoch < floor or (lead is not None and message.epoch == lead.epoch):
            refused = ReplicateRefused(part=self.pid, epoch=floor, covers=message.covers, stale=True, file=self.file,
                                       sent=message.sent)
            self._ready.answers.append(Sent(self.me, event.src, refused))
            return
        if lead is not None:
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
                self.lin.read(self._ready.kv)
            return
        self._ready.send += lead.answered(event.src, message, event.now)
        self._high_watermark(event.now)

    def _tick(self, tick: Tick) -> None:
        now, timing = tick.now, self.timing
        if self.lin.uncertain is not None:  # its outcome unknown, and no read in flight (one failed): read again
            self.lin.read_if_due(now, timing.kv_retry, self._ready.kv)
        lead = self.lead
        if lead is not None:
            self._ready.send += lead.tick(now)
            if self.lin.idle and lead.proposal is None:
                change = insync.change(lead, tick.heard_until)
                if change is not None:
                    lead.proposal = change
                    self.lin.cas(change, self._ready.kv)
                else:
                    self._confirm_lead(now)
            self._high_watermark(now)
            return
        if not self.lin.idle:
            return
        state = self.known
        silent = state is None or state.leader is None or tick.heard_until - self.follower.heard >= timing.election
        if (self.role is Role.FOLLOWER and silent and state is not None and state.leader != self.me
                and state.holds(self.me, self.file)):
            logger.info("partition %d: no word from %s, leader of epoch %d; asking to lead", self.pid,
                        state.leader or "anyone", state.epoch)
            self._ask_to_lead(membership.elected(state, self.me, self.file))
            self._become(Role.CANDIDATE, now)
        elif silent or self.role is Role.STARTING:
            # what this replica knows may be old (news of a change lost on the way): lin-kv says
            self.lin.read_if_due(now, timing.kv_retry, self._ready.kv)
        elif self._rebalance.due(state, self.role is Role.FOLLOWER, now):
            assert state is not None
            logger.info("partition %d: the preferred replica, in sync for %.1f s; taking the lead back from %s",
                        self.pid, timing.rebalance, state.leader)
            self._ask_to_lead(membership.resumed(state, self.me))
            self._become(Role.CANDIDATE, now)
        elif self._rebalance.awaits_return(state, self.role is Role.FOLLOWER):
            # the news of its return to the in-sync set may be lost on the way: lin-kv says, now and then
            self.lin.read_if_due(now, timing.reread, self._ready.kv)

    # --- lin-kv -----------------------------------------------------------------------------------

    def _confirm_lead(self, now: float) -> None:
        """A leader asks lin-kv now and then whether it still names it: a compare-and-set of another
        replica's former incarnation, applied after that one restarted, names a leader no one is."""
        self.lin.read_if_due(now, self.timing.reread, self._ready.kv, optional=True)

    def _ask_to_lead(self, to: PartitionState) -> None:
        self.proposed_epochs.add(to.epoch)
        self.lin.cas(to, self._ready.kv)

    def _answered(self, event: KvAnswered) -> None:
        before = self.lin.known
        heard = self.lin.answered(event, self.timing.kv_retry, self._ready.kv)
        if self.lin.known is not before:
            self._ready.learned = self.lin.known
        if heard is Heard.APPLIED:
            to = self.lin.known
            assert to is not None
            logger.info("partition %d: lin-kv set leader=%s epoch=%d isr=%s elr=%s version=%d", self.pid, to.leader,
                        to.epoch, ",".join(to.isr), ",".join(to.elr), to.version)
            self._ready.send += [Sent(self.me, node, Leadership(part=self.pid, state=to))
                                 for node in self.nodes if node != self.me]
        if heard in (Heard.APPLIED, Heard.STATE):
            self._act(event.now)

    def _expired(self, event: KvExpired) -> None:
        if not self.lin.expired(event, self._ready.kv):
            return
        if self.lead is not None and self.lin.expiries >= 2:
            logger.warning("partition %d: lin-kv has not answered twice in a row; no longer leading epoch %d",
                           self.pid, self.lead.epoch)
            self.proposed_epochs.discard(self.lead.epoch)
            self._become(Role.FOLLOWER, event.now, None, self.lead.epoch)

    # --- what the state calls for -----------------------------------------------------------------

    def _act(self, now: float) -> None:
        """Do what lin-kv's newest state calls for: lead as it names this replica (only an epoch
        this incarnation asked for), start a new epoch as a restarted leader, leave as a replica
        that lost its file, or follow."""
        state = self.known
        self._rebalance.saw(state, now)
        if state is None:
            if self.lin.missing and not self.lin.calling and self.role is Role.STARTING:
                if self.me == self.replicas[0]:  # the partition's first leader creates its state
                    self._ask_to_lead(membership.created(self.me, self.file, self.epochs.last[1] + 1, self.replicas))
                else:
                    self.lin.reread_at = now + self.timing.kv_retry
            return
        if self.me in state.eligible and not state.holds(self.me, self.file):
            if self.lead is not None or self.role is not Role.FOLLOWER:
                self._become(Role.FOLLOWER, now, None if state.leader == self.me else state.leader, state.epoch)
            logger.error("partition %d: lin-kv names this replica eligible with another file than its own: it lost "
                         "what it held; leaving the in-sync set", self.pid)
            self.lin.cas(membership.forsaken(state, self.me), self._ready.kv)
            return
        if state.leader == self.me:
            if state.epoch in self.proposed_epochs:
                if self.lead is None or self.lead.epoch != state.epoch:
                    self._become(Role.LEADER_STARTING, now, self.me, state.epoch, created=state.version == 1)
                else:
                    self.lead.state = state
                    if self.lead.proposal is not None and state.version >= self.lead.proposal.version:
                        self.lead.proposal = None
                    self._high_watermark(now)
            elif not self.lin.calling:  # led by a former incarnation (or a call of one, applied late)
                logger.info("partition %d: lin-kv names this node leader of epoch %d; leading the next", self.pid,
                            state.epoch)
                if self.lead is not None:
                    self._become(Role.FOLLOWER, now)
                self._ask_to_lead(membership.resumed(state, self.me))
            return
        if self.lead is not None or self.role is Role.STARTING or (self.role is Role.CANDIDATE and not self.lin.calling):
            self._become(Role.FOLLOWER, now, state.leader, state.epoch)
        elif self.follower.follow(state.leader, state.epoch, now):
            self._ready.led = (state.leader, state.epoch)

    def _high_watermark(self, now: float) -> None:
        lead = self.lead
        if lead is None:
            return
        hw = lead.high_watermark()
        if hw is not None:
            self._ready.hw = hw
            if lead.ready and self.role is Role.LEADER_STARTING:
                self._become(Role.LEADER, now)

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
            self._high_watermark(now)
        elif role is Role.FOLLOWER and epoch is not None and self.follower.follow(leader, epoch, now):
            self._ready.led = (leader, epoch)
