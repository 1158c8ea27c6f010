"""One node's part in replication: which partitions it leads and follows, what lin-kv says of each
(read at start-up, changed by compare-and-set to start, elect and move the in-sync set), and which
of its commits every in-sync replica holds, so that replies waiting for them may leave."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from kafka_node import protocol
from kafka_node.replication import roles, wire
from kafka_node.replication.follower import FollowerPartition, apply_all
from kafka_node.replication.leader import LeaderPartition
from kafka_node.replication.leadership import KvCalls, LeadMoves, Outcome
from kafka_node.replication.placement import Placement
from kafka_node.replication.wire import PartitionState
from kafka_node.storage import Storage

logger = logging.getLogger(__name__)

#: Seconds a commit may wait for the in-sync set before its outcome is given as unknown: less
#: than a forwarding node waits, so that its client hears this node's answer.
REPLICATION_TIMEOUT = 2.5
#: Seconds between two looks at the partitions' timers (heartbeats, elections, lagging followers).
TICK = 0.05
#: Seconds between two reads of a partition's state while it has no leader known.
REREAD_AFTER = 0.5


class Replicator:
    """The partitions of one node, their roles, and its calls to lin-kv."""

    def __init__(self, node_id: str, placement: Placement, storage: Storage, now: float) -> None:
        self.node_id = node_id
        self.placement = placement
        self.storage = storage
        self.kv = KvCalls(node_id)
        self.states: dict[int, PartitionState] = {}
        self.leading: dict[int, LeaderPartition] = {}
        self.following = {part: FollowerPartition(part, None, 0, now) for part in placement.parts_of(node_id)}
        self.starting = set(self.following)  # replicas whose start-up decision is still to make
        self.failed: list[int] = []  # commits given up on, not yet told to the node
        #: Partitions this node must never lead: it was their only in-sync replica and lost its file.
        self.barred: set[int] = set()
        self._first_pending: dict[int, int] = {}  # led partition -> its oldest commit still waiting
        self._reread_at: dict[int, float] = {}
        self._next_tick = now
        self.moves = LeadMoves()  # whose lead moved away, for the requests sent on to them

    def start(self, now: float) -> list[wire.Sent]:
        """Ask lin-kv for every partition's state (routing needs them all)."""
        for part in self.starting:
            self._reread_at[part] = now + REREAD_AFTER
        return [self.kv.read(part, now) for part in range(self.placement.partitions)]

    # --- routing and admission ----------------------------------------------------------------

    def leader_of(self, key: str) -> str | None:
        return self.leader_of_part(self.placement.partition(key))

    def refusal(self, keys: Iterable[str], writes: bool) -> str | None:
        """Why a request naming `keys` may not be applied here now (None: it may)."""
        for part in {self.placement.partition(key) for key in keys}:
            leader = self.leading.get(part)
            if leader is None:
                return f"not the leader of partition {part} (its leader: {self.leader_of_part(part) or 'none known'})"
            if not leader.ready:
                return f"partition {part}'s leader is starting epoch {leader.epoch}"
            if writes and not leader.writable():
                return (f"partition {part} has {len(leader.state.isr)} replicas in sync, fewer than "
                        f"--min-insync {self.placement.min_insync}")
        return None

    def leader_of_part(self, part: int) -> str | None:
        """The leader this node knows of (a follower hears of a new one before lin-kv tells)."""
        if part in self.leading:
            return self.node_id
        follower = self.following.get(part)
        if follower is not None and part not in self.starting:
            return follower.leader
        state = self.states.get(part)
        return state.leader if state is not None else None

    def stamp(self, key: str) -> tuple[int, int, int]:
        return self.leading[self.placement.partition(key)].stamp()

    # --- commits of this node's writes --------------------------------------------------------

    def wrote(self, commit: int, sent: Iterable[str], committed: Iterable[str], now: float) -> list[wire.Sent]:
        """A commit of client writes: each led partition it changed replicates it."""
        sent_parts = {self.placement.partition(key) for key in sent}
        committed_keys: dict[int, list[str]] = {}
        for key in committed:
            committed_keys.setdefault(self.placement.partition(key), []).append(key)
        out: list[wire.Sent] = []
        for part in sent_parts | committed_keys.keys():
            leader = self.leading.get(part)
            if leader is None:
                continue
            offsets = self.storage.log.committed_offsets(committed_keys[part]) if part in committed_keys else {}
            out += leader.wrote(commit, part in sent_parts, offsets, now + REPLICATION_TIMEOUT, now)
            self._first_pending.setdefault(part, commit)
        return out

    def released(self) -> int:
        """The newest commit before which every client write is held by its in-sync set."""
        commits = self.storage.log.commits
        return min([commits, *(first - 1 for first in self._first_pending.values())])

    def take_failed(self) -> list[int]:
        failed, self.failed = self.failed, []
        return failed

    # --- messages -----------------------------------------------------------------------------

    def receive(self, envelopes: Sequence[wire.ReplicaEnvelope | protocol.PeerReplyEnvelope],
                now: float) -> tuple[list[tuple[wire.Sent, int]], list[wire.Sent]]:
        """Other replicas' messages and lin-kv's replies: the acknowledgements to send once
        their commit is durable (with that commit), and the messages to send at once."""
        held: list[tuple[wire.Sent, int]] = []
        out: list[wire.Sent] = []
        replicates = []
        for envelope in envelopes:
            src, body = envelope.src, envelope.body
            if isinstance(body, wire.KvReadOk | wire.KvCasOk | protocol.PeerError):  # lin-kv's replies
                outcome = self.kv.answered(body.in_reply_to, body) if src == wire.LIN_KV else None
                if outcome is not None:
                    out += self._decided(outcome, now)
            elif src not in self.placement.node_ids or src == self.node_id:
                logger.warning("ignored a %s from %s, which is not another node of the cluster",
                               body.__struct_config__.tag, src)
            elif isinstance(body, wire.Replicate):
                replicates.append((src, body))
            elif isinstance(body, wire.ReplicateOk | wire.ReplicateRefused):
                out += self._answered(src, body, now)
            elif isinstance(body, wire.Leadership):
                out += self._told(body.part, body.state, now)
        if replicates:
            held += self._apply(replicates, now)
        out += self._settle(now)
        return held, out

    def _apply(self, replicates: list[tuple[str, wire.Replicate]], now: float) -> list[tuple[wire.Sent, int]]:
        """Leaders' messages, stored in one transaction; the answers, with the commit they wait for."""
        def refuse(part: int, covers: int) -> wire.ReplicateRefused:
            return wire.ReplicateRefused(part=part, epoch=self._epoch_known(part), covers=covers, stale=True)

        return apply_all(self.node_id, replicates, self.following, self._follower_for, refuse, self.storage, now)

    def _follower_for(self, part: int, src: str, epoch: int, now: float) -> FollowerPartition | None:
        """The follower that takes a message of `epoch` from `src` (a leader of an older epoch
        learns it is deposed); None if this node is no replica of it, or leads a newer epoch."""
        leader = self.leading.get(part)
        if leader is not None:
            if epoch <= leader.epoch:
                return None
            self._demote(part, src, epoch, now)
        return self.following.get(part)

    def _epoch_known(self, part: int) -> int:
        if part in self.leading:
            return self.leading[part].epoch
        follower = self.following.get(part)
        return follower.epoch if follower else 0

    def _answered(self, src: str, body: wire.ReplicateOk | wire.ReplicateRefused, now: float) -> list[wire.Sent]:
        leader = self.leading.get(body.part)
        if leader is None:
            return []
        commits = self.storage.log.commits
        if isinstance(body, wire.ReplicateOk):
            return leader.acknowledged(src, body.covers, commits, now) if body.epoch == leader.epoch else []
        if body.stale:
            if body.epoch > leader.epoch:  # a newer epoch exists: ask lin-kv who leads it
                logger.info("partition %d: %s follows epoch %d; asking lin-kv", body.part, src, body.epoch)
                return [] if self.kv.waiting(body.part) else [self.kv.read(body.part, now)]
            return []
        return leader.refused(src, body, commits, now)

    # --- lin-kv ---------------------------------------------------------------------------------

    def _decided(self, outcome: Outcome, now: float) -> list[wire.Sent]:
        return roles.decide(self, outcome, now)

    def _told(self, part: int, state: PartitionState, now: float) -> list[wire.Sent]:
        known = self.states.get(part)
        if known is not None and known.version >= state.version:
            return []
        return roles.adopt(self, part, state, now)

    def reread_at(self, part: int, when: float) -> None:
        """Read the partition's state again at `when` (lin-kv could not say it yet)."""
        self._reread_at[part] = when

    def read_due(self, part: int, now: float) -> list[wire.Sent]:
        """A read of the partition's state, unless one was made lately or is in flight."""
        if self.kv.waiting(part) or now < self._reread_at.get(part, 0.0):
            return []
        self._reread_at[part] = now + REREAD_AFTER
        return [self.kv.read(part, now)]

    # --- roles ------------------------------------------------------------------------------------

    def lead(self, part: int, state: PartitionState, now: float) -> list[wire.Sent]:
        """Lead the partition in `state`'s epoch: probe every follower."""
        self.following.pop(part, None)
        self.starting.discard(part)
        leader = LeaderPartition(part, state, self.placement, self.node_id, self.storage.replica,
                                 self.storage.log.commits, now)
        self.leading[part] = leader
        self.moves.learned(part, self.node_id, state.epoch)
        logger.info("partition %d: leading epoch %d, in sync %s", part, state.epoch, ",".join(state.isr))
        commits = self.storage.log.commits
        return [leader.probe(follower, commits, now) for follower in leader.followers]

    def _demote(self, part: int, leader: str | None, epoch: int, now: float) -> None:
        self.moves.learned(part, leader, epoch)
        led = self.leading.pop(part, None)
        if led is not None:
            self.failed += led.abandon()
            self._first_pending.pop(part, None)
            logger.info("partition %d: epoch %d is led by %s; following", part, epoch, leader)
        follower = self.following.setdefault(part, FollowerPartition(part, leader, epoch, now))
        follower.follow(leader, epoch, now)

    def follow(self, part: int, state: PartitionState, now: float) -> None:
        self.starting.discard(part)
        self._demote(part, state.leader, state.epoch, now)

    def announce(self, part: int, state: PartitionState) -> list[wire.Sent]:
        """Tell every other node of a change this node made in lin-kv."""
        return [wire.Sent(self.node_id, node, wire.Leadership(part=part, state=state))
                for node in self.placement.node_ids if node != self.node_id]

    # --- time -----------------------------------------------------------------------------------

    def next_tick(self) -> float:
        return self._next_tick

    def tick(self, now: float) -> list[wire.Sent]:
        """Heartbeats, catch-ups, in-sync set changes, elections and lin-kv calls given up on."""
        self._next_tick = now + TICK
        out: list[wire.Sent] = []
        for call in self.kv.expired(now):
            led = self.leading.get(call.part)
            if led is not None and call.proposed is not None and led.proposal is call.proposed:
                led.proposal = None
            out.append(self.kv.read(call.part, now))
        commits = self.storage.log.commits
        for leader in self.leading.values():
            out += leader.tick(commits, now)
        out += roles.reads_due(self, now)
        out += self._settle(now)
        return out

    def _settle(self, now: float) -> list[wire.Sent]:
        """Let go of the commits every in-sync replica holds (or given up on), and propose the
        in-sync set each led partition should have now."""
        out = []
        for part, leader in self.leading.items():
            change = leader.isr_change(now)
            if change is not None and not self.kv.waiting(part):
                leader.proposal = change
                out.append(self.kv.cas(part, leader.state, change, now))
            first, failed = leader.settle(now)
            if failed:
                logger.warning("partition %d: %d commits not held by the in-sync set in time", part, len(failed))
                self.failed += failed
            if first is None:
                self._first_pending.pop(part, None)
            else:
                self._first_pending[part] = first
        return out
