"""What a replica does with what lin-kv says of a partition: start up as a new incarnation (leave the
in-sync set, hand on the lead), lead, follow, or elect itself; every change by compare-and-set."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kafka_node.replication import wire
from kafka_node.replication.leadership import KEY_DOES_NOT_EXIST, Outcome
from kafka_node.replication.wire import PartitionState

if TYPE_CHECKING:
    from kafka_node.replication.replicator import Replicator

logger = logging.getLogger("kafka_node.replication.replicator")

#: Seconds without hearing from its leader before an in-sync follower tries to lead.
ELECTION_TIMEOUT = 0.5
#: Seconds before a partition's state is read again when lin-kv could not say it.
RETRY_AFTER = 0.25


def decide(r: Replicator, outcome: Outcome, now: float) -> list[wire.Sent]:
    """Act on lin-kv's answer to a read or a compare-and-set."""
    call = outcome.call
    part = call.part
    if call.proposed is not None:  # a compare-and-set
        led = r.leading.get(part)
        if led is not None and led.proposal is call.proposed:
            led.proposal = None
        if outcome.error is None:
            r.states[part] = call.proposed
            return _took(r, part, call.proposed, now) + r.announce(part, call.proposed)
        return [r.kv.read(part, now)]  # someone else changed it first: see what it is now
    if outcome.error is not None and outcome.error != KEY_DOES_NOT_EXIST:
        logger.warning("lin-kv answered a read of partition %d with error %d", part, outcome.error)
        r.reread_at(part, now + RETRY_AFTER)
        return []
    if outcome.state is None:
        if part in r.starting and r.placement.preferred_leader(part) == r.node_id:
            epoch = r.storage.replica.last_batch(part)[1] + 1  # above any epoch this file holds
            return [r.kv.cas(part, None, PartitionState(r.node_id, epoch, [r.node_id], 1), now)]
        r.reread_at(part, now + RETRY_AFTER)
        return []
    return adopt(r, part, outcome.state, now)


def adopt(r: Replicator, part: int, state: PartitionState, now: float) -> list[wire.Sent]:
    """Act on a partition's current state (read from lin-kv, or told by the node that set it)."""
    r.states[part] = state
    r.moves.learned(part, state.leader, state.epoch)
    me = r.node_id
    if part not in r.following and part not in r.leading:
        return []  # not a replica of it: the state only routes requests
    if part in r.starting:
        return _start(r, part, state, now)
    led = r.leading.get(part)
    if led is not None:
        if state.leader == me and state.epoch == led.epoch:
            led.adopt(state)
            return []
        r.follow(part, state, now)
        return []
    follower = r.following[part]
    if follower.electing:  # this replica stopped hearing its leader and asked lin-kv
        same = state.leader == follower.leader and state.epoch == follower.epoch
        if part not in r.barred and same and me in state.isr and state.leader != me:
            isr = [node for node in state.isr if node != state.leader]
            logger.info("partition %d: no word from %s, leader of epoch %d; proposing to lead", part, state.leader, state.epoch)
            return [r.kv.cas(part, state, state.changed(me, isr, new_epoch=True), now)]
        follower.electing = False
    if state.leader == me and me in state.isr and part not in r.barred:  # handed the lead by the replica that had it
        return r.lead(part, state, now)
    if state.epoch >= follower.epoch:
        r.follow(part, state, now)
    return []


def _start(r: Replicator, part: int, state: PartitionState, now: float) -> list[wire.Sent]:
    """A new incarnation of this node never leads on the strength of an older one's place:
    it leaves the in-sync set (handing on the lead if it had it) and follows, to rejoin once
    caught up. As the only in-sync replica it takes the lead again with a new epoch, if it
    kept its file; if it lost it, nobody may lead without losing acknowledged messages."""
    me = r.node_id
    if me not in state.isr:
        r.follow(part, state, now)
        return []
    others = [node for node in state.isr if node != me]
    if others:
        leader = state.leader if state.leader != me else others[0]
        return [r.kv.cas(part, state, state.changed(leader, others, new_epoch=state.leader == me), now)]
    if r.storage.created:
        logger.error("partition %d: this node was its only in-sync replica and lost its file; no replica may "
                     "lead it without losing acknowledged messages", part)
        r.barred.add(part)
        r.follow(part, state, now)
        return []
    return [r.kv.cas(part, state, state.changed(me, [me], new_epoch=True), now)]


def _took(r: Replicator, part: int, state: PartitionState, now: float) -> list[wire.Sent]:
    """A compare-and-set of this node's succeeded: act on the state it set."""
    if state.leader == r.node_id:
        led = r.leading.get(part)
        if led is not None and led.epoch == state.epoch:
            led.adopt(state)
            return []
        return r.lead(part, state, now)
    if part in r.following or part in r.leading:
        r.follow(part, state, now)
    return []


def reads_due(r: Replicator, now: float) -> list[wire.Sent]:
    """lin-kv reads the timers call for: a start-up decision still to make, a partition with no
    leader known, and an election, by an in-sync follower that has not heard its leader for
    ELECTION_TIMEOUT; on a node that holds no replica of a partition, its state until known."""
    out: list[wire.Sent] = []
    for part, follower in r.following.items():
        state = r.states.get(part)
        if part in r.starting or follower.leader is None or state is None or state.leader is None:
            out += r.read_due(part, now)
        elif (now - follower.heard > ELECTION_TIMEOUT and r.node_id in state.isr and part not in r.barred
              and not r.kv.waiting(part)):
            follower.electing = True
            out.append(r.kv.read(part, now))
    for part in set(range(r.placement.partitions)) - r.following.keys() - r.leading.keys():
        if part not in r.states:
            out += r.read_due(part, now)
    return out
