"""Calls to Maelstrom's lin-kv, where each partition's leadership lives: reads and compare-and-sets
of a partition's state, numbered so that each reply finds what it was for, and given up on in time;
and the leads this node saw move."""

from __future__ import annotations

import itertools
import random
from typing import NamedTuple

from kafka_node.replication import wire
from kafka_node.replication.placement import kv_key
from kafka_node.replication.wire import PartitionState

#: Seconds a call to lin-kv may take before it is given up on (and made again if still needed).
KV_TIMEOUT = 2.0

#: lin-kv's error codes (src/maelstrom/service.clj): no such key; the compare-and-set's `from` differed.
KEY_DOES_NOT_EXIST = 20
PRECONDITION_FAILED = 22


class Call(NamedTuple):
    """A call to lin-kv in flight: the partition, and for a compare-and-set the state proposed."""

    part: int
    proposed: PartitionState | None
    deadline: float


class Outcome(NamedTuple):
    """What a call gave: the state read or set (None: no state yet), or that it failed and how."""

    call: Call
    state: PartitionState | None
    error: int | None = None


class KvCalls:
    """The calls this node has made to lin-kv and not yet heard back about."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._msg_ids = itertools.count(random.getrandbits(40) + 1)
        self._calls: dict[int, Call] = {}

    def read(self, part: int, now: float) -> wire.Sent:
        msg_id = next(self._msg_ids)
        self._calls[msg_id] = Call(part, None, now + KV_TIMEOUT)
        return wire.Sent(self.node_id, wire.LIN_KV, wire.KvRead(key=kv_key(part), msg_id=msg_id))

    def cas(self, part: int, old: PartitionState | None, new: PartitionState, now: float) -> wire.Sent:
        msg_id = next(self._msg_ids)
        self._calls[msg_id] = Call(part, new, now + KV_TIMEOUT)
        body = wire.KvCas(key=kv_key(part), from_=old, to=new, create_if_not_exists=old is None, msg_id=msg_id)
        return wire.Sent(self.node_id, wire.LIN_KV, body)

    def waiting(self, part: int) -> bool:
        """Whether a call about `part` is in flight."""
        return any(call.part == part for call in self._calls.values())

    def answered(self, in_reply_to: int, body: object) -> Outcome | None:
        """What lin-kv's reply tells (None: it answers no call in flight)."""
        call = self._calls.pop(in_reply_to, None)
        if call is None:
            return None
        if isinstance(body, wire.KvCasOk):
            return Outcome(call, call.proposed)
        if isinstance(body, wire.KvReadOk):
            state = wire.decode_state(body.value)
            return Outcome(call, state, None if state is not None else KEY_DOES_NOT_EXIST)
        code = getattr(body, "code", None)
        return Outcome(call, None, code if isinstance(code, int) else -1)

    def expired(self, now: float) -> list[Call]:
        """The calls unanswered past their deadline, forgotten now."""
        late = [msg_id for msg_id, call in self._calls.items() if call.deadline <= now]
        return [self._calls.pop(msg_id) for msg_id in late]


class LeadMoves:
    """Who leads each partition, as last known, and the leads that moved away from a node since
    last asked: requests sent on to a former leader for its partition can be given up on."""

    def __init__(self) -> None:
        self._known: dict[int, tuple[str | None, int]] = {}  # part -> (leader, epoch)
        self._moved: list[tuple[str, int]] = []  # (former leader, partition)

    def learned(self, part: int, leader: str | None, epoch: int) -> None:
        """Note who leads `part` in `epoch` (an older epoch's news changes nothing)."""
        former, known_epoch = self._known.get(part, (None, -1))
        if epoch <= known_epoch:
            return
        self._known[part] = (leader, epoch)
        if former is not None and former != leader:
            self._moved.append((former, part))

    def take(self) -> list[tuple[str, int]]:
        """The (former leader, partition) pairs noted since last asked."""
        moved, self._moved = self._moved, []
        return moved
