"""A partition this node leads: what each follower holds, sending it new batches (or, when its log
differs, what it lacks, from the file), which commits every in-sync replica holds, and the in-sync set."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import msgspec

from kafka_node.replication import wire
from kafka_node.replication.placement import Placement
from kafka_node.replication.wire import PartitionState, Replicate
from kafka_node.storage.replica import Entry, ReplicaLog

#: Seconds without sending a follower anything before an empty batch tells it the leader lives.
HEARTBEAT = 0.1
#: Seconds a follower may go without acknowledging all the leader wrote before it leaves the in-sync set.
LAG_TIMEOUT = 0.5
#: Seconds before a probe or catch-up left unanswered is sent again.
RESEND_AFTER = 0.5
#: Messages at most in one catch-up: a follower far behind is filled in several.
CATCH_UP_MESSAGES = 2000


@dataclass
class Progress:
    """What the leader knows of one follower in this epoch."""

    live: bool = False  # its log follows the leader's up to what was last sent: new batches go to it at once
    acked: int = 0  # the leader's commit up to which it durably holds the partition
    resync_covers: int = -1  # covers of the last probe or catch-up sent: refusals of older messages are stale
    last_sent: float = 0.0
    caught_up_at: float = 0.0  # when it last acknowledged holding all the leader had written
    catching_up: bool = False  # a partial catch-up is in flight: the next follows its acknowledgement
    partial_end: int = 0  # the last batch the partial catch-up in flight carries
    sent_covers: int = 0  # the covers of the last message sent it: the next live one follows it


class LeaderPartition:
    """One partition led by this node in one epoch."""

    def __init__(self, part: int, state: PartitionState, placement: Placement, node_id: str,
                 replica: ReplicaLog, commits: int, now: float) -> None:
        self.part = part
        self.state = state
        self.placement = placement
        self.node_id = node_id
        self.replica = replica
        self.followers = {f: Progress(caught_up_at=now) for f in placement.replicas(part) if f != node_id}
        self.last = replica.last_batch(part)  # (seq, epoch) of the last batch
        self.last_write = commits  # the commit that last changed the partition (as of now: everything)
        self.ready_at = commits  # reads wait until every in-sync follower holds this
        self.ready = False
        self.pending: deque[tuple[int, float]] = deque()  # (commit, deadline) awaiting the in-sync set
        self.proposal: PartitionState | None = None  # an in-sync set change sent to lin-kv

    @property
    def epoch(self) -> int:
        return self.state.epoch

    def adopt(self, state: PartitionState) -> None:
        """Take the partition's newer state (same epoch). A follower it drops from the in-sync
        set starts over: it must hold the leader's log again, by a probe, before it rejoins
        (it may have dropped out by restarting, with nothing)."""
        for follower in set(self.state.isr) - set(state.isr):
            if follower in self.followers:
                self.followers[follower] = Progress(caught_up_at=0.0)
        self.state = state

    def waited_on(self) -> set[str]:
        """The followers whose acknowledgement a commit needs: the in-sync set, and while a
        change to it is in flight, the proposed one's too."""
        members = set(self.state.isr) | (set(self.proposal.isr) if self.proposal else set())
        members.discard(self.node_id)
        return members

    def writable(self) -> bool:
        """Whether a write may be applied: the epoch has begun, and enough replicas are in sync."""
        small = min(len(self.state.isr), len(self.proposal.isr) if self.proposal else len(self.state.isr))
        return self.ready and small >= self.placement.min_insync

    def stamp(self) -> tuple[int, int, int]:
        """(partition, seq, epoch) of the batch a transaction now writing would make."""
        return self.part, self.last[0] + 1, self.epoch

    # --- sending ----------------------------------------------------------------------

    def wrote(self, commit: int, sent: bool, commits: dict[str, int], deadline: float, now: float) -> list[wire.Sent]:
        """A commit wrote to the partition (a batch of sends if `sent`; committed offsets): it
        waits for the in-sync set; live followers get it at once."""
        prev = self.last
        sends: list[tuple[str, int, int, int, msgspec.Raw]] = []
        if sent:
            self.last = (prev[0] + 1, self.epoch)
            sends = _sends(self.replica.batch(self.part, self.last[0]))
        self.last_write = commit
        self.pending.append((commit, deadline))
        body = Replicate(part=self.part, epoch=self.epoch, covers=commit, prev=prev, sends=sends, commits=commits)
        return [self._send(f, body, now) for f, progress in self.followers.items() if progress.live]

    def _send(self, follower: str, body: Replicate, now: float) -> wire.Sent:
        progress = self.followers[follower]
        if body.covers and not body.whole:
            body = msgspec.structs.replace(body, after=progress.sent_covers)
        progress.sent_covers = max(progress.sent_covers, body.covers)
        progress.last_sent = now
        return wire.Sent(self.node_id, follower, body)

    def probe(self, follower: str, commits: int, now: float) -> wire.Sent:
        """Everything the partition holds past the leader's last batch (nothing) and every
        committed offset: a follower whose log holds that batch then holds what the leader does."""
        progress = self.followers[follower]
        progress.live, progress.catching_up = True, False
        progress.resync_covers = commits
        body = Replicate(part=self.part, epoch=self.epoch, covers=commits, prev=self.last,
                         commits=self._committed(), whole=True)
        return self._send(follower, body, now)

    def catch_up(self, follower: str, after: int, commits: int, now: float) -> wire.Sent:
        """The batches after `after` (a follower's log matches the leader's up to it), whole if
        they fit in one message, else the first of several."""
        progress = self.followers[follower]
        entries = self.replica.batches_after(self.part, after, CATCH_UP_MESSAGES)
        last_seq = entries[-1].seq if entries else after
        whole = last_seq >= self.last[0]
        prev = (after, self.replica.epoch_of(self.part, after) or 0)
        sends = _sends(entries)
        progress.live, progress.catching_up, progress.partial_end = whole, not whole, last_seq
        progress.resync_covers = commits if whole else 0
        body = Replicate(part=self.part, epoch=self.epoch, covers=commits if whole else 0, prev=prev, sends=sends,
                         commits=self._committed() if whole else {}, whole=whole)
        return self._send(follower, body, now)

    def _committed(self) -> dict[str, int]:
        placement, part = self.placement, self.part
        return self.replica.committed_in(lambda key: placement.partition(key) == part)

    # --- answers ----------------------------------------------------------------------

    def acknowledged(self, follower: str, covers: int, commits: int, now: float) -> list[wire.Sent]:
        """A follower holds the partition up to `covers`; the next catch-up if one was partial."""
        progress = self.followers.get(follower)
        if progress is None:
            return []
        progress.acked = max(progress.acked, covers)
        if progress.catching_up and covers == 0:
            return [self.catch_up(follower, progress.partial_end, commits, now)]
        if progress.live and progress.acked >= self.last_write:
            progress.caught_up_at = now
        return []

    def refused(self, follower: str, body: wire.ReplicateRefused, commits: int, now: float) -> list[wire.Sent]:
        """A follower's log does not hold a batch it was sent after: send it what it lacks,
        from where its log and the leader's agree (KIP-101: the end of its last epoch here)."""
        progress = self.followers.get(follower)
        if progress is None or body.covers < progress.resync_covers:
            return []  # the refusal of a message sent before the last resync
        progress.live = False
        agree = min(body.at, self.replica.end_of_epoch(self.part, body.at_epoch), self.last[0])
        return [self.catch_up(follower, agree, commits, now)]

    # --- what is held by the in-sync set ---------------------------------------------------

    def settle(self, now: float) -> tuple[int | None, list[int]]:
        """The oldest commit still waiting for the in-sync set (None: none), and the commits
        given up on (their outcome is unknown): waited past their deadline."""
        members = self.waited_on()
        enough = len(members) + 1 >= self.placement.min_insync
        held = min((self.followers[f].acked for f in members if f in self.followers), default=None)
        if not self.ready and (held is None or held >= self.ready_at):
            self.ready = True
        failed = []
        while self.pending:
            commit, deadline = self.pending[0]
            if enough and (held is None or held >= commit):
                self.pending.popleft()
            elif deadline <= now:
                self.pending.popleft()
                failed.append(commit)
            else:
                return commit, failed
        return None, failed

    def abandon(self) -> list[int]:
        """Every commit still waiting (the partition is no longer led here): outcome unknown."""
        failed = [commit for commit, _ in self.pending]
        self.pending.clear()
        return failed

    # --- time ----------------------------------------------------------------------------

    def tick(self, commits: int, now: float) -> list[wire.Sent]:
        """Heartbeats to live followers with nothing sent lately; probes again to the others."""
        out = []
        for follower, progress in self.followers.items():
            if now - progress.last_sent < (HEARTBEAT if progress.live else RESEND_AFTER):
                continue
            if progress.live and not progress.catching_up:
                body = Replicate(part=self.part, epoch=self.epoch, covers=progress.sent_covers, prev=self.last)
                out.append(self._send(follower, body, now))
            elif not progress.catching_up or now - progress.last_sent >= RESEND_AFTER:
                out.append(self.probe(follower, commits, now))
        return out

    def isr_change(self, now: float) -> PartitionState | None:
        """The in-sync set this leader should propose now, if it should change: a follower
        behind for longer than LAG_TIMEOUT leaves; one that holds all the leader holds joins."""
        if self.proposal is not None:
            return None
        isr = set(self.state.isr)
        for follower, progress in self.followers.items():
            if follower in isr and now - progress.caught_up_at > LAG_TIMEOUT:
                isr.discard(follower)
            elif follower not in isr and progress.live and progress.acked >= self.last_write \
                    and now - progress.caught_up_at <= LAG_TIMEOUT:
                isr.add(follower)
        if isr == set(self.state.isr):
            return None
        return self.state.changed(self.node_id, sorted(isr), new_epoch=False)


def _sends(entries: list[Entry]) -> list[tuple[str, int, int, int, msgspec.Raw]]:
    return [(e.key, e.offset, e.seq, e.epoch, msgspec.Raw(e.msg.encode())) for e in entries]
