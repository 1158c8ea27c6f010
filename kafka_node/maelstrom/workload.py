"""The kafka workload's generator: the next operation a client runs (send, poll, assign),
key rotation and per-key values, op pacing, client crashes, and the final polls' targets."""

from __future__ import annotations

import math
import random
from typing import Any

from kafka_node.maelstrom.history import OK, Op, key_order

#: Active keys at a time; key slot i is chosen about twice as often as slot i + 1.
KEY_COUNT = 10
#: Share of operations that are assigns (Jepsen's sub-p).
ASSIGN_P = 1 / 64
#: Share of assigns that also take every key sent but not yet polled.
UNSEEN_P = 1 / 3
#: Mean seconds between client crashes, divided by the concurrency.
CRASH_INTERVAL = 30.0


class Workload:
    """Chooses operations and learns from their completions, like Jepsen's kafka generator."""

    def __init__(self, rng: random.Random, max_writes_per_key: int, key_count: int = KEY_COUNT) -> None:
        self.rng = rng
        self.active = [str(k) for k in range(key_count)]
        self._next_key = key_count
        self._slot_weights = [2.0 ** -i for i in range(key_count)]
        self._limit_weights = [1 / n for n in range(1, max_writes_per_key + 1)]
        self.limits = {key: self._write_limit() for key in self.active}
        self.writes: dict[str, int] = {}  # key -> sends generated (also its last value)
        self.sent: dict[str, int] = {}  # keys sent but not yet polled that far: highest send offset
        self.polled: dict[str, int] = {}  # and the highest offset polled of those keys
        self.max_offsets: dict[str, int] = {}  # highest offset known per key (sends and polls)

    def _write_limit(self) -> int:
        """A per-key number of sends, Zipf-like in 1..max-writes-per-key."""
        return self.rng.choices(range(1, len(self._limit_weights) + 1), self._limit_weights)[0]

    def _slot(self) -> int:
        return self.rng.choices(range(len(self.active)), self._slot_weights)[0]

    def next_op(self) -> tuple[str, Any]:
        """The next main-phase operation: (f, value)."""
        slot = self._slot()
        if self.rng.random() < ASSIGN_P:
            keys = [self.active[slot]]
            if self.sent and self.rng.random() < UNSEEN_P:
                keys += [key for key in sorted(self.sent, key=key_order) if key != keys[0]]
            return "assign", {"keys": keys, "seek_to_beginning": False}
        if self.rng.random() < 0.5:
            return "poll", None
        return "send", self._next_send(slot)

    def _next_send(self, slot: int) -> dict[str, Any]:
        key = self.active[slot]
        value = self.writes[key] = self.writes.get(key, 0) + 1
        if value >= self.limits[key]:
            fresh = str(self._next_key)
            self._next_key += 1
            self.active[slot] = fresh
            self.limits[fresh] = self._write_limit()
        return {"key": key, "msg": value}

    def observe(self, op: Op) -> None:
        """Learn the offsets an ok send or poll revealed (Jepsen's op->max-offsets: a key a
        poll returned with no messages counts as offset -1)."""
        if op.type != OK or not isinstance(op.value, dict):
            return
        if op.f == "send":
            key, offset = op.value["key"], op.value["offset"]
            self._raise(self.max_offsets, key, offset)
            self._raise(self.sent, key, offset)
            self._forget_if_caught_up(key)
        elif op.f == "poll":
            for key, pairs in op.value.get("msgs", {}).items():
                highest = max((offset for offset, _ in pairs), default=-1)
                self._raise(self.max_offsets, key, highest)
                self._raise(self.polled, key, highest)
                self._forget_if_caught_up(key)

    def _forget_if_caught_up(self, key: str) -> None:
        if self.polled.get(key, -1) >= self.sent.get(key, -1):
            self.sent.pop(key, None)
            self.polled.pop(key, None)

    @staticmethod
    def _raise(offsets: dict[str, int], key: str, offset: int) -> None:
        offsets[key] = max(offsets.get(key, offset), offset)

    def keys_used(self) -> list[str]:
        """The keys the final polls assign: every key an ok send or poll revealed, numerically."""
        return sorted(self.max_offsets, key=key_order)


class Stagger:
    """Paces operations: about `rate` per second overall, at uniformly random intervals."""

    def __init__(self, rng: random.Random, rate: float, max_debt: float = 1.0) -> None:
        self.rng = rng
        self.interval = 1.0 / rate
        self.max_debt = max_debt
        self._next: float | None = None

    def next_slot(self, now: float) -> float:
        """When the next operation may start (seconds); slots missed long ago are skipped."""
        slot = max(self._next if self._next is not None else now, now - self.max_debt)
        self._next = slot + self.rng.uniform(0, 2 * self.interval)
        return slot


class CrashSchedule:
    """Client crashes at uniformly random intervals averaging CRASH_INTERVAL / concurrency."""

    def __init__(self, rng: random.Random, concurrency: int, start: float) -> None:
        self.rng = rng
        self.mean = CRASH_INTERVAL / concurrency
        self._next = start + self.rng.uniform(0, 2 * self.mean)

    def due(self, now: float) -> bool:
        """True once per scheduled crash, to the first client that asks after its time."""
        if now < self._next:
            return False
        self._next = max(self._next, now - self.mean) + self.rng.uniform(0, 2 * self.mean)
        return True


def restart_delay(rng: random.Random, period: float) -> float:
    """Seconds until the next node restart: uniformly 0.5 to 1.5 periods."""
    return rng.uniform(0.5 * period, 1.5 * period) if period > 0 else math.inf
