"""A partition this replica leads, in one epoch: what each follower holds and is sent (batches at once,
or what it lacks from the file), the high watermark, and the read lease its followers grant."""

from __future__ import annotations

import logging

import msgspec

from kafka_node.replication.epochs import EpochCache
from kafka_node.replication.events import Entry
from kafka_node.replication.insync import WriteTimes
from kafka_node.replication.ports import PartitionLog
from kafka_node.replication.progress import FollowerProgress, Phase
from kafka_node.replication.timing import Timing
from kafka_node.wire import Sent
from kafka_node.wire.replica import PartitionState, Replicate, ReplicateOk, ReplicateRefused

logger = logging.getLogger("kafka_node.replication")

#: Messages at most in one part of a catch-up: a follower far behind is filled in several. What is
#: in flight (these two multiplied) waits in the follower's input ahead of other replicas' batches and
#: its clients' requests: more is faster and slows them more (docs/performance.md, row u).
CATCH_UP_MESSAGES = 500
#: Parts of a catch-up in flight at once: the next ones travel while the follower takes one, and
#: those that come together are taken in one transaction.
CATCH_UP_PARTS = 2


class Leading:
    """One partition led by this replica in one epoch. `state` is lin-kv's, naming this replica
    leader; `proposal`, a change to it asked of lin-kv and not yet known to be applied or not:
    until it is, the leader waits for the members of both (Kafka's maximal in-sync set)."""

    def __init__(self, pid: int, me: str, state: PartitionState, replicas: list[str], log: PartitionLog,
                 epochs: EpochCache, timing: Timing, min_insync: int, now: float, serve_after: float) -> None:
        self.pid = pid
        self.me = me
        self.state = state
        self.proposal: PartitionState | None = None
        self.log = log
        self.epochs = epochs
        self.timing = timing
        self.min_insync = min_insync
        self.progress = {node: FollowerProgress() for node in replicas if node != me}
        self.ready_at = log.commits  # nothing is served until every eligible replica holds this
        self.ready = False
        self.serve_after = serve_after  # no read before this: a former leader's lease may last until then
        self.hw = 0
        self.last_write = self.ready_at  # the newest commit that wrote to the partition
        self.writes = WriteTimes(self.ready_at, now)
        #: Each key's newest committed offset this epoch moved, with the commit that moved it.
        self._moved: dict[str, tuple[int, int]] = {}

    @property
    def epoch(self) -> int:
        return self.state.epoch

    # --- who counts ------------------------------------------------------------------------

    def members(self) -> set[str]:
        """The in-sync set, and while a change to it is pending, the proposed one's members too."""
        return set(self.state.isr) | (set(self.proposal.isr) if self.proposal else set())

    def file_of(self, node: str) -> str | None:
        """The file lin-kv names for an eligible replica, whichever of the known and the proposed
        state it holds (None: none, or they differ: its answers count for nothing until lin-kv
        says which)."""
        file = self.state.files.get(node)
        if self.proposal is not None and self.proposal.files.get(node) != file:
            return None
        return file

    def fewest_in_sync(self) -> int:
        """The members of the smaller in-sync set, of the known and the proposed."""
        return min(len(self.state.isr), len(self.proposal.isr) if self.proposal else len(self.state.isr))

    def enough_in_sync(self) -> bool:
        """Whether the in-sync set, known and proposed, has at least --min-insync members."""
        return self.fewest_in_sync() >= self.min_insync

    def eligible_out(self) -> set[str]:
        """The eligible replicas out of the in-sync set (known and proposed): each holds every
        write acknowledged so far, so none is acknowledged that one lacks until it is given up."""
        out = set(self.state.elr) | (set(self.proposal.elr) if self.proposal else set())
        return out - self.members() - {self.me}

    def held_in_sync(self) -> int:
        """The newest commit every member of the in-sync set holds, in the file lin-kv names for it."""
        waited = self.members() - {self.me}
        return min(self.held_by(node) for node in waited) if waited else self.log.commits

    def high_watermark(self) -> int | None:
        """The new high watermark, if it moved: the newest commit every eligible replica holds
        (the in-sync set, and those out of it not given up yet); frozen while the set is smaller
        than --min-insync."""
        if not self.enough_in_sync():
            return None
        held = min([self.held_in_sync(), *(self.held_by(node) for node in self.eligible_out())])
        if held <= self.hw:
            return None
        self.hw = held
        if not self.ready and held >= self.ready_at:
            self.ready = True
            logger.info("partition %d: every in-sync replica holds the log of epoch %d; serving", self.pid, self.epoch)
        return held

    def held_by(self, node: str) -> int:
        """What an eligible replica holds, as far as acknowledging goes: only answers from the
        file lin-kv names for it count (one it names none for, since the partition's creation,
        counts as holding nothing: it could lose its disk and still pass for eligible)."""
        progress = self.progress.get(node)
        if progress is None or progress.file is None or progress.file != self.file_of(node):
            return 0
        return progress.match

    def lease_holds(self, now: float) -> bool:
        """Whether every replica able to take the lead without this one has heard it within the
        lease: none of them can have been elected yet, so what this leader holds is the latest.
        Never before `serve_after`: the leader this one followed may read under its lease until then."""
        if now < self.serve_after:
            return False
        eligible = set(self.state.eligible) | (set(self.proposal.eligible) if self.proposal else set())
        return all(self.progress[node].heard_at + self.timing.lease > now
                   for node in eligible if node != self.me and node in self.progress)

    def refusal(self, writes: bool, durable: int, now: float) -> str | None:
        """Why a request may not be applied now (None: it may): the epoch is starting (not every
        in-sync follower holds the log yet, or a former leader's lease may last), too few are in
        sync to write, or the lease does not hold to read."""
        if not self.ready or now < self.serve_after:
            return f"partition {self.pid}'s leader is starting epoch {self.epoch}"
        if writes:
            if not self.enough_in_sync():
                return (f"partition {self.pid} has {self.fewest_in_sync()} replicas in sync, fewer than --min-insync "
                        f"{self.min_insync}")
        elif not self.lease_holds(now) or durable < self.ready_at:
            return f"partition {self.pid}'s leader cannot show it still leads (a follower has not heard it lately)"
        return None

    # --- sending ---------------------------------------------------------------------------

    def stamp(self) -> tuple[int, int, int]:
        """(partition, seq, epoch) of the batch a transaction now writing would make."""
        return self.pid, self.epochs.last[0] + 1, self.epoch

    def wrote(self, commit: int, batch: bool, committed: dict[str, int], now: float) -> list[Sent]:
        """A commit wrote to the partition (a batch of sends; committed offsets): followers
        sent everything so far get it at once."""
        prev = self.epochs.last
        entries: list[Entry] = []
        if batch:
            self.epochs.append(prev[0] + 1, self.epoch)
            entries = self.log.batch(self.pid, prev[0] + 1)
        self.last_write = commit
        self.writes.record(commit, now)
        for key, offset in committed.items():
            self._moved[key] = (commit, offset)
        body = Replicate(part=self.pid, epoch=self.epoch, covers=commit, prev=prev, sends=_sends(entries),
                         commits=committed, sent=now)
        return [self._send(node, body, now) for node, progress in self.progress.items() if progress.phase is Phase.REPLICATE]

    def _send(self, node: str, body: Replicate, now: float) -> Sent:
        progress = self.progress[node]
        if body.covers and not body.whole:
            body = msgspec.structs.replace(body, after=progress.sent_covers)
        progress.sent_covers = max(progress.sent_covers, body.covers)
        progress.last_sent = now
        if progress.unanswered_since is None:
            progress.unanswered_since = now
        return Sent(self.me, node, body)

    def probe(self, node: str, now: float) -> Sent:
        """Nothing past the leader's last batch, and the committed offsets the follower may lack:
        a follower whose log holds that batch then holds what the leader does."""
        progress = self.progress[node]
        commits = self.log.commits
        progress.phase, progress.fence = Phase.REPLICATE, commits
        body = Replicate(part=self.pid, epoch=self.epoch, covers=commits, prev=self.epochs.last,
                         commits=self._committed_for(progress), whole=True, sent=now)
        return self._send(node, body, now)

    def catch_up(self, node: str, after: int, now: float) -> list[Sent]:
        """The batches after `after` (the follower's log matches the leader's up to it), whole
        if they fit in one message, else the first parts of several."""
        self.progress[node].begin_catch_up(after, now)
        return self._parts(node, now)

    def _parts(self, node: str, now: float) -> list[Sent]:
        """A catch-up's next parts, while fewer than CATCH_UP_PARTS are in flight; the last one,
        whole, once the follower acknowledged every part before it."""
        progress = self.progress[node]
        out = []
        while progress.phase is Phase.CATCH_UP and len(progress.parts) < CATCH_UP_PARTS:
            after = progress.end
            entries = self.log.batches_after(self.pid, after, CATCH_UP_MESSAGES)
            last_seq = entries[-1].seq if entries else after
            whole = last_seq >= self.epochs.last[0]
            if whole and progress.parts:
                break
            prev = (after, self.epochs.epoch_of(after) or 0)
            commits = self.log.commits
            if whole:
                progress.phase, progress.fence = Phase.REPLICATE, commits
            else:
                progress.part_sent(last_seq)
            body = Replicate(part=self.pid, epoch=self.epoch, covers=commits if whole else 0, prev=prev,
                             sends=_sends(entries), commits=self._committed_for(progress) if whole else {}, whole=whole,
                             sent=now)
            out.append(self._send(node, body, now))
        return out

    def _committed_for(self, progress: FollowerProgress) -> dict[str, int]:
        """The committed offsets a whole message carries: those moved since the follower last
        surely held them all, or every one of the partition when that is unknown."""
        if progress.offsets_match < 0:
            return self.log.committed_of(self.pid)
        return {key: offset for key, (commit, offset) in self._moved.items() if commit > progress.offsets_match}

    # --- answers ---------------------------------------------------------------------------

    def answered(self, node: str, answer: ReplicateOk | ReplicateRefused, now: float) -> list[Sent]:
        """A follower's answer of this epoch: what it holds, or what it lacks, and the next
        part of a catch-up in flight."""
        progress = self.progress.get(node)
        if progress is None:
            return []
        if answer.file in progress.retired:
            return []  # a late answer from a file it had before: that file is gone
        if answer.file and answer.file != progress.file:
            if progress.file is None:
                progress.file = answer.file  # its first answer
            elif answer.sent < progress.heard_at:
                return []  # an answer from another file to a message older than one its file answered
            else:
                logger.info("partition %d: %s answers from another file; it holds nothing known", self.pid, node)
                progress.new_file(answer.file)
        progress.heard_at = max(progress.heard_at, answer.sent)
        if progress.unanswered_since is not None and answer.sent >= progress.unanswered_since:
            progress.unanswered_since = None
        if isinstance(answer, ReplicateOk):
            if progress.phase is Phase.CATCH_UP and answer.covers == 0:
                progress.part_taken(answer.through)
                return self._parts(node, now)
            if answer.covers > progress.match:
                progress.match = answer.covers
                if progress.offsets_match < 0 and answer.covers >= progress.fence >= 0:
                    progress.offsets_match = progress.fence  # its whole message carried every offset
                elif progress.offsets_match >= 0:
                    progress.offsets_match = max(progress.offsets_match, answer.covers)
            self._forget_moved()
            return []
        if answer.covers < progress.fence or (progress.phase is Phase.CATCH_UP and answer.sent < progress.began):
            return []  # the refusal of a message sent before the last whole one, or before this catch-up
        agree = min(answer.at, self.epochs.end_of_epoch(answer.at_epoch), self.epochs.last[0])
        return self.catch_up(node, agree, now)

    def _forget_moved(self) -> None:
        """Drop the moved offsets every follower surely holds."""
        if not self._moved:
            return
        floor = min((p.offsets_match for p in self.progress.values()), default=-1)
        if floor >= 0:
            self._moved = {key: moved for key, moved in self._moved.items() if moved[0] > floor}

    # --- time ------------------------------------------------------------------------------

    def tick(self, now: float) -> list[Sent]:
        """Heartbeats to followers sent nothing lately; probes again to the others."""
        out = []
        timing = self.timing
        for node, progress in self.progress.items():
            if progress.phase is Phase.REPLICATE:
                if now - progress.last_sent >= timing.heartbeat:
                    body = Replicate(part=self.pid, epoch=self.epoch, covers=progress.sent_covers, prev=self.epochs.last,
                                     sent=now)
                    out.append(self._send(node, body, now))
            elif now - progress.last_sent >= timing.resend:
                out.append(self.probe(node, now))
        return out


def _sends(entries: list[Entry]) -> list[tuple[str, int, int, int, msgspec.Raw]]:
    return [(key, offset, seq, epoch, msgspec.Raw(msg)) for key, offset, seq, epoch, msg in entries]
