"""A partition this node follows: a leader's batches checked against this replica's log (the epoch,
the batch before them) and stored, what diverges truncated, and when the leader was last heard from."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from itertools import groupby

from kafka_node.replication import wire
from kafka_node.replication.wire import Replicate, ReplicateOk, ReplicateRefused
from kafka_node.storage import Storage
from kafka_node.storage.log import Log
from kafka_node.storage.replica import Entry, ReplicaLog

logger = logging.getLogger(__name__)


class FollowerPartition:
    """One partition followed by this node: the leader and epoch it follows, and what of this
    epoch it has applied. `electing`: this replica stopped hearing its leader and asked lin-kv
    whether it may lead the next epoch (what it takes meanwhile is in its log when it does)."""

    def __init__(self, part: int, leader: str | None, epoch: int, now: float) -> None:
        self.part = part
        self.leader = leader
        self.epoch = epoch
        self.applied = 0  # the `covers` of the last message applied in this epoch
        self.synced = False  # a whole message of this epoch was applied: live batches may follow it
        self.heard = now  # when the leader was last heard from
        self.electing = False

    def snapshot(self) -> tuple[str | None, int, int, bool]:
        """What it knows of its leader and log, to put back if a transaction is rolled back."""
        return self.leader, self.epoch, self.applied, self.synced

    def restore(self, snapshot: tuple[str | None, int, int, bool]) -> None:
        self.leader, self.epoch, self.applied, self.synced = snapshot

    def follow(self, leader: str | None, epoch: int, now: float) -> None:
        """Follow `leader` from `epoch` on (a newer epoch than known)."""
        if epoch > self.epoch or leader != self.leader:
            self.leader, self.epoch, self.applied, self.electing, self.synced = leader, max(epoch, self.epoch), 0, False, False
        self.heard = now

    def apply(self, src: str, body: Replicate, log: Log, replica: ReplicaLog, now: float) -> ReplicateOk | ReplicateRefused:
        """Store the leader's message inside the open transaction, if it follows this log."""
        if body.epoch < self.epoch:
            return ReplicateRefused(part=self.part, epoch=self.epoch, covers=body.covers, stale=True)
        if body.epoch > self.epoch or src != self.leader:
            self.follow(src, body.epoch, now)
        self.heard = now
        self.electing = False  # the leader lives
        if self.synced and 0 < body.covers <= self.applied:
            return ReplicateOk(part=self.part, epoch=self.epoch, covers=body.covers)  # sent twice: already held
        prev_seq, prev_epoch = body.prev
        held_prev = replica.epoch_of(self.part, prev_seq)
        if body.covers and not body.whole and (not self.synced or body.after != self.applied):
            # a live batch that does not follow the last message applied (one was lost, or this
            # replica restarted): what it lacks is unknown, so the leader sends it everything
            last_seq, last_epoch = replica.last_batch(self.part)
            return ReplicateRefused(part=self.part, epoch=self.epoch, covers=body.covers, at=last_seq, at_epoch=last_epoch)
        if held_prev != prev_epoch:
            # lacking it: say where this log ends; holding another epoch's: the batch before it
            at = replica.last_batch(self.part)[0] if held_prev is None else prev_seq - 1
            return ReplicateRefused(part=self.part, epoch=self.epoch, covers=body.covers, at=at,
                                    at_epoch=replica.epoch_of(self.part, at) or 0)
        last = prev_seq
        for seq, group in groupby(body.sends, key=lambda send: send[2]):
            entries = [Entry(key, offset, seq, epoch, str(memoryview(msg), "utf-8")) for key, offset, _, epoch, msg in group]
            held = replica.epoch_of(self.part, seq)
            if held is not None:
                if held == entries[0].epoch:
                    last = seq
                    continue
                dropped = replica.truncate_after(self.part, seq - 1)
                logger.info("partition %d: dropped %d messages from batch %d on, which the leader's log does not hold",
                            self.part, dropped, seq)
            replica.append(self.part, entries)
            last = seq
        if body.whole:
            self.synced = True
            dropped = replica.truncate_after(self.part, last)
            if dropped:
                logger.info("partition %d: dropped %d messages past batch %d, the end of the leader's log",
                            self.part, dropped, last)
        if body.commits:
            log.commit_offsets(body.commits)
        if body.covers:
            self.applied = body.covers
        return ReplicateOk(part=self.part, epoch=self.epoch, covers=body.covers)


def apply_all(node_id: str, replicates: list[tuple[str, Replicate]], following: Mapping[int, FollowerPartition],
              follower_for: Callable[[int, str, int, float], FollowerPartition | None],
              refuse: Callable[[int, int], ReplicateRefused], storage: Storage,
              now: float) -> list[tuple[wire.Sent, int]]:
    """Leaders' messages stored in one transaction (each by the follower `follower_for` names,
    else refused with `refuse`); each answer, with the commit it waits for. Acknowledgements
    are cumulative, so only a partition's last one is sent. If the transaction fails, every
    follower forgets what it applied."""
    log, replica = storage.log, storage.replica
    answers: dict[tuple[str, int], list[ReplicateOk | ReplicateRefused]] = {}
    before = {part: follower.snapshot() for part, follower in following.items()}
    log.begin()
    try:
        for src, body in replicates:
            follower = follower_for(body.part, src, body.epoch, now)
            answer = refuse(body.part, body.covers) if follower is None else follower.apply(src, body, log, replica, now)
            answers.setdefault((src, body.part), []).append(answer)
        commit = log.commit()
    except Exception:
        logger.exception("could not store a leader's batches; they will be sent again")
        log.rollback()
        for part, snapshot in before.items():  # what they applied is not in the file
            if part in following:
                following[part].restore(snapshot)
        return []
    held = []
    for (src, _), replies in answers.items():
        oks = [r for r in replies if isinstance(r, ReplicateOk)]
        keep = [r for r in replies if not isinstance(r, ReplicateOk)] + oks[-1:]
        held += [(wire.Sent(node_id, src, reply), commit) for reply in keep]
    return held
