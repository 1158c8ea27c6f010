"""Maelstrom's services, as src/maelstrom/service.clj (jepsen-io/maelstrom) implements them:
lin-kv (linearizable), seq-kv (sequentially consistent: reads may see any of the last 32
states, never going back for one caller), lww-kv (two replicas, each request served by one
at random) and lin-tso (a counter from 0). Each answers a request body with a reply body, or
with None where Maelstrom's service thread throws and answers nothing."""

from __future__ import annotations

import random
from typing import Any

import msgspec

Body = dict[str, Any]

#: States seq-kv keeps for stale reads (Maelstrom's ring buffer).
SEQ_KV_STATES = 32
#: Replicas of lww-kv (Maelstrom's `eventual` default).
LWW_KV_REPLICAS = 2


def _same(a: Any, b: Any) -> bool:
    """Clojure's = on JSON values: 1 and 1.0 differ, maps compare by content."""
    return type(a) is type(b) and a == b if not isinstance(a, (dict, list)) else (
        msgspec.json.encode(a, order="sorted") == msgspec.json.encode(b, order="sorted"))


def _missing() -> Body:
    return {"type": "error", "code": 20, "text": "key does not exist"}


def _not_from(current: Any, wanted: Any) -> Body:
    return {"type": "error", "code": 22, "text": f"current value {current!r} is not {wanted!r}"}


def _key(body: Body) -> Any:
    """A key as a dictionary key: JSON text of whatever the request carried."""
    return msgspec.json.encode(body.get("key"), order="sorted")


class KV:
    """Maelstrom's PersistentKV, as a value: `handle` returns the next state and the reply."""

    def __init__(self, data: dict[bytes, Any] | None = None) -> None:
        self.data = data or {}

    def handle(self, body: Body) -> tuple[KV, Body]:
        key, kind = _key(body), body.get("type")
        if kind == "read":
            return self, ({"type": "read_ok", "value": self.data[key]} if key in self.data else _missing())
        if kind == "write":
            return KV({**self.data, key: body.get("value")}), {"type": "write_ok"}
        if kind == "cas":
            if key in self.data:
                if _same(body.get("from"), self.data[key]):
                    return KV({**self.data, key: body.get("to")}), {"type": "cas_ok"}
                return self, _not_from(self.data[key], body.get("from"))
            if body.get("create_if_not_exists") not in (None, False):
                return KV({**self.data, key: body.get("to")}), {"type": "cas_ok"}
            return self, _missing()
        raise ValueError(f"unknown request type {kind!r}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KV) and self.data.keys() == other.data.keys() and all(
            _same(v, other.data[k]) for k, v in self.data.items())


class LinKV:
    """lin-kv: every request applies to the one current state."""

    def __init__(self) -> None:
        self.state = KV()

    def handle(self, src: str, body: Body) -> Body | None:
        try:
            self.state, reply = self.state.handle(body)
        except ValueError:
            return None
        return reply


class SeqKV:
    """seq-kv, Maelstrom's Sequential wrapper: a request that changes nothing (a read, a failed
    cas, a write of the value already there) is served by a random state between the one its
    caller saw last and the newest; one that changes something applies to the newest state.
    Only the last 32 states are kept; a caller that saw an older one is served from the oldest
    kept (what Maelstrom's ring buffer does there is not modelled)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.states = [KV()]  # the newest last; index of states[i] is last_index - (len - 1 - i)
        self.last_index = 0
        self.seen: dict[str, int] = {}  # caller -> index of the state it saw last

    def handle(self, src: str, body: Body) -> Body | None:
        oldest = self.last_index - (len(self.states) - 1)
        index = self.rng.randint(max(self.seen.get(src, 0), oldest), self.last_index)
        state = self.states[index - oldest]
        try:
            after, reply = state.handle(body)
            if after == state:
                self.seen[src] = index
                return reply
            after, reply = self.states[-1].handle(body)
        except ValueError:
            return None
        self.last_index += 1
        self.states = [*self.states, after][-SEQ_KV_STATES:]
        self.seen[src] = self.last_index
        return reply


class LwwKV:
    """lww-kv, Maelstrom's Eventual wrapper around two last-write-wins replicas. Each request
    goes to a replica at random. Maelstrom also merges a random pair of replicas on every
    request, but binds the merge to a name it then shadows, so the replicas never converge;
    neither do these."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.replicas = [KV() for _ in range(LWW_KV_REPLICAS)]

    def handle(self, src: str, body: Body) -> Body | None:
        i = self.rng.randrange(LWW_KV_REPLICAS)
        if body.get("type") == "cas" and _key(body) not in self.replicas[i].data:
            return _missing()  # LWWKV's cas never creates a key
        try:
            self.replicas[i], reply = self.replicas[i].handle(body)
        except ValueError:
            return None
        return reply


class LinTSO:
    """lin-tso: `ts` answers ts_ok with 0, 1, 2, ..."""

    def __init__(self) -> None:
        self.next = 0

    def handle(self, src: str, body: Body) -> Body | None:
        if body.get("type") != "ts":
            return None
        self.next += 1
        return {"type": "ts_ok", "ts": self.next - 1}


def default_services(rng: random.Random) -> dict[str, LinKV | SeqKV | LwwKV | LinTSO]:
    """The services every Maelstrom test starts, by node id."""
    return {"lin-kv": LinKV(), "seq-kv": SeqKV(rng), "lww-kv": LwwKV(rng), "lin-tso": LinTSO()}
