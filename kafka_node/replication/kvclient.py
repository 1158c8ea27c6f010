"""Calls to Maelstrom's lin-kv, where each partition's leadership lives: numbered so that each
reply finds the call it answers, and given up on at their deadline."""

from __future__ import annotations

import itertools
import random
from typing import NamedTuple

from kafka_node.replication.events import KvCall
from kafka_node.replication.placement import kv_key
from kafka_node.wire import Sent
from kafka_node.wire.kv import LIN_KV, KvCas, KvCasOk, KvRead, KvReadOk, decode_state
from kafka_node.wire.replica import PartitionState

#: The code given to an error reply that carries none this node can read.
UNREADABLE_ERROR = -1


class KvAnswer(NamedTuple):
    """What lin-kv's reply says of a call: the state read (None: no state), or the error."""

    call: KvCall
    state: PartitionState | None
    error: int | None


class KvClient:
    """The calls this node has made to lin-kv and not yet heard back about, each with its deadline."""

    def __init__(self, node_id: str, timeout: float, rng: random.Random | None = None) -> None:
        self.node_id = node_id
        self.timeout = timeout
        # Numbered from a random start, so that a late reply to a call of an earlier incarnation
        # of this node is not taken for the reply to one of this one's.
        self._msg_ids = itertools.count((rng or random).getrandbits(40) + 1)
        self._calls: dict[int, tuple[KvCall, float]] = {}  # msg_id -> (call, deadline), in deadline order

    def send(self, call: KvCall, now: float) -> Sent:
        msg_id = next(self._msg_ids)
        self._calls[msg_id] = (call, now + self.timeout)
        key = kv_key(call.pid)
        if call.to is None:
            return Sent(self.node_id, LIN_KV, KvRead(key=key, msg_id=msg_id))
        body = KvCas(key=key, from_=call.from_, to=call.to, create_if_not_exists=call.from_ is None, msg_id=msg_id)
        return Sent(self.node_id, LIN_KV, body)

    def answered(self, in_reply_to: int, body: object) -> KvAnswer | None:
        """What lin-kv's reply tells (None: it answers no call in flight)."""
        entry = self._calls.pop(in_reply_to, None)
        if entry is None:
            return None
        call = entry[0]
        if isinstance(body, KvCasOk):
            return KvAnswer(call, call.to, None)
        if isinstance(body, KvReadOk):  # a value that is no state of ours: lin-kv could not say (read again later)
            state = decode_state(body.value)
            return KvAnswer(call, state, None if state is not None else UNREADABLE_ERROR)
        code = getattr(body, "code", None)
        return KvAnswer(call, None, code if isinstance(code, int) else UNREADABLE_ERROR)

    def expired(self, now: float) -> list[KvCall]:
        """The calls unanswered past their deadline, forgotten now."""
        late = []
        while self._calls:
            msg_id, (call, deadline) = next(iter(self._calls.items()))
            if deadline > now:
                break
            del self._calls[msg_id]
            late.append(call)
        return late
