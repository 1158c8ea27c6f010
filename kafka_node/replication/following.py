"""A partition this replica follows: a leader's message checked against the log as it will be (epoch,
batch before, chain of live batches), turned into writes and an answer; when the leader was heard."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kafka_node.replication.epochs import EpochCache
from kafka_node.replication.events import Append, Entry, MergeCommitted, PersistOp, TruncateAfter
from kafka_node.wire.replica import Replicate, ReplicateOk, ReplicateRefused

logger = logging.getLogger("kafka_node.replication")


@dataclass
class FollowState:
    """The leader and epoch followed, and what of this epoch the replica took."""

    leader: str | None
    epoch: int
    #: The covers of the last message taken in this epoch.
    applied: int = 0
    #: A whole message of this epoch was taken: the log equals the leader's up to `applied`,
    #: so live batches chained after it may follow.
    synced: bool = False


class Follower:
    """One partition followed: the leader and what was taken of it. The log's batches are the
    machine's (`EpochCache`), lent to each call."""

    def __init__(self, pid: int, file: str, now: float) -> None:
        self.pid = pid
        self.file = file
        self.state = FollowState(None, 0)
        #: When the leader was last heard from (a message of its epoch taken, or refused).
        self.heard = now

    def follow(self, leader: str | None, epoch: int, now: float) -> bool:
        """Follow `leader` from `epoch` on; whether that is news (an older epoch is not)."""
        current = self.state
        if epoch < current.epoch or (epoch == current.epoch and leader == current.leader):
            return False
        if epoch == current.epoch and None in (leader, current.leader):
            current.leader = leader  # the epoch's leader named or its lead left: the log taken stays as taken
            return True
        self.state = FollowState(leader, epoch)
        self.heard = now
        return True

    def take(self, src: str, message: Replicate, epochs: EpochCache,
             now: float) -> tuple[list[PersistOp], ReplicateOk | ReplicateRefused]:
        """A leader's message: the writes that make this log hold it (`epochs` moves with them),
        and the answer to send once they are durable (or a refusal, with nothing to write)."""
        state = self.state
        if message.epoch < state.epoch:
            return [], self._refused(message, epochs, stale=True, epoch=state.epoch)
        self.follow(src, message.epoch, now)
        state = self.state
        self.heard = now
        if state.synced and 0 < message.covers <= state.applied:
            return [], self._ok(message)  # sent twice: already held
        if message.covers and not message.whole and (not state.synced or message.after != state.applied):
            # a live batch that does not follow the last message taken (one was lost, or this
            # replica restarted): what it lacks is unknown, so the leader sends it everything
            return [], self._refused(message, epochs, at=epochs.last[0])
        prev_seq, prev_epoch = message.prev
        held_prev = epochs.epoch_of(prev_seq)
        if held_prev != prev_epoch:
            # lacking it: say where this log ends; holding another epoch's: the batch before it
            return [], self._refused(message, epochs, at=epochs.last[0] if held_prev is None else prev_seq - 1)
        ops = self._batches(message, epochs)
        if ops is None:
            return [], self._refused(message, epochs, at=epochs.last[0])
        if message.commits:
            ops.append(MergeCommitted(dict(message.commits)))
        state.applied = max(state.applied, message.covers)  # a whole message sent earlier may come late
        return ops, self._ok(message)

    def _batches(self, message: Replicate, epochs: EpochCache) -> list[PersistOp] | None:
        """The writes that store the message's batches after `prev_seq` (None: they are not a
        run of whole batches following it, so nothing is taken)."""
        batches: list[tuple[int, int, list[Entry]]] = []
        last, last_epoch = message.prev
        entries: list[Entry] = []
        # one pass over the messages (a catch-up brings millions, often a batch each): each new seq
        # starts a batch; tuple.__new__ is Entry's own constructor without its Python frame
        for key, offset, seq, epoch, msg in message.sends:
            if seq != last or not batches:
                if seq != last + 1 or not last_epoch <= epoch <= message.epoch:
                    return None  # not whole batches of a leader's log following `prev`
                entries = []
                batches.append((seq, epoch, entries))
                last, last_epoch = seq, epoch
            elif epoch != last_epoch:
                return None  # a batch mixing epochs
            entries.append(tuple.__new__(Entry, (key, offset, seq, epoch, bytes(msg).decode())))
        ops: list[PersistOp] = []
        for seq, epoch, entries in batches:
            held = epochs.epoch_of(seq)
            if held == epoch:
                continue
            if held is not None:
                ops.append(TruncateAfter(self.pid, seq - 1))
                epochs.truncate_after(seq - 1)
                logger.info("partition %d: dropping batches from %d on, which the leader's log does not hold", self.pid, seq)
            epochs.append(seq, epoch)
            ops.append(tuple.__new__(Append, (self.pid, entries)))  # as Entry's, above
        if message.whole:
            self.state.synced = True
            # past the end of the leader's log as it was sent: batches of an older epoch diverge from
            # it and go; batches of this epoch are the same leader's, sent later (this message came late)
            if (epochs.epoch_of(last + 1) or message.epoch) < message.epoch:
                ops.append(TruncateAfter(self.pid, last))
                epochs.truncate_after(last)
                logger.info("partition %d: dropping batches past %d, the end of the leader's log", self.pid, last)
        return ops

    def _ok(self, message: Replicate) -> ReplicateOk:
        # a catch-up part brings no commit: its last batch says which part of several in flight this is
        through = message.sends[-1][2] if message.covers == 0 and message.sends else 0
        return ReplicateOk(part=self.pid, epoch=self.state.epoch, covers=message.covers, file=self.file, sent=message.sent,
                           through=through)

    def _refused(self, message: Replicate, epochs: EpochCache, at: int = 0, stale: bool = False,
                 epoch: int | None = None) -> ReplicateRefused:
        return ReplicateRefused(part=self.pid, epoch=self.state.epoch if epoch is None else epoch, covers=message.covers,
                                at=at, at_epoch=epochs.epoch_of(at) or 0, stale=stale, file=self.file,
                                sent=message.sent)
