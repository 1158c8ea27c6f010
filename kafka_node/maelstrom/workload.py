"""The kafka workload's generator: the next operation a client runs (send, poll, assign),
key rotation and per-key values, op pacing, client crashes, and the final polls' targets."""

from __future__ import annotations

import math
import random
from typing import Any

from kafka_node.maelstrom.history import OK, Op, key_order

#: Active keys at a time; key slot i + 1 is chosen about twice as often as slot i.
KEY_COUNT = 10
#: Share of operations that are assigns (Jepsen's sub-p).
ASSIGN_P = 1 / 64
#: Share of assigns that also take every key sent but not yet polled.
UNSEEN_P = 1 / 3
#: Mean seconds between client crashes, divided by the concurrency.
CRASH_INTERVAL = 30.0


def max_poll_offsets(msgs: dict[str, list]) -> dict[str, int]:
    """Jepsen's op->max-poll-offsets: each key a poll returned, at its highest offset read, or
    -1 when it returned no message of it."""
    return {key: max([-1, *(offset for offset, _ in pairs)]) for key, pairs in msgs.items()}


class Workload:
    """Chooses operations and learns from their completions, as the generator Maelstrom runs:
    elle 0.2.2's wr-txns of single reads and writes, Jepsen's interleave-subscribes (assigns),
    poll-unseen and track-key-offsets (jepsen.tests.kafka)."""

    def __init__(self, rng: random.Random, max_writes_per_key: int, key_count: int = KEY_COUNT) -> None:
        self.rng = rng
        self.max_writes_per_key = max_writes_per_key
        self.active = [str(k) for k in range(key_count)]
        self._slot_weights = [2.0 ** i for i in range(key_count)]
        self.writes: dict[str, int] = {}  # key -> sends generated (also its last value)
        self.sent: dict[str, int] = {}  # keys sent but not yet polled that far: highest send offset
        self.polled: dict[str, int] = {}  # and the highest offset polled of those keys
        self.max_offsets: dict[str, int] = {}  # highest offset known per key (sends and polls)
        self.tracking = True  # max_offsets learns only while the main phase's generator lives
        self._pending: tuple[str, str, int | None] | None = None  # the op an assign stood in for

    def _slot(self) -> int:
        return self.rng.choices(range(len(self.active)), self._slot_weights)[0]

    def _underlying(self) -> tuple[str, str, int | None]:
        """elle's wr-txns, one micro-op: a read or a write of a random active key. A write past
        max-writes-per-key retires the key for a fresh one and draws again, so every key
        gets exactly max-writes-per-key sends (values 1, 2, ...)."""
        while True:
            f, slot = ("poll" if self.rng.random() < 0.5 else "send"), self._slot()
            key = self.active[slot]
            if f == "poll":
                return f, key, None
            value = self.writes.get(key, 0) + 1
            if value <= self.max_writes_per_key:
                self.writes[key] = value
                return f, key, value
            self.active[slot] = str(max(int(k) for k in self.active) + 1)

    def next_op(self) -> tuple[str, Any]:
        """The next main-phase operation: (f, value). About one in 64 times an assign of the
        key the next operation will use (a third of the time with every key sent but not
        yet polled too) stands in for it, and that operation comes later."""
        if self._pending is None:
            self._pending = self._underlying()
        f, key, value = self._pending
        if self.rng.random() < ASSIGN_P:
            keys = [key]
            if self.sent and self.rng.random() < UNSEEN_P:
                keys += [k for k in sorted(self.sent, key=key_order) if k != key]
            return "assign", {"keys": keys, "seek_to_beginning": False}
        self._pending = None
        return (f, None) if f == "poll" else (f, {"key": key, "msg": value})

    def observe(self, op: Op) -> None:
        """Learn the offsets an ok send or poll revealed (Jepsen's op->max-offsets: a send's
        offset counts as at least 0, a key a poll returned with no messages as -1)."""
        if op.type != OK or not isinstance(op.value, dict):
            return
        if op.f == "send":
            revealed = {op.value["key"]: max(0, op.value["offset"])}
            self._learn(self.sent, revealed)
        elif op.f == "poll":
            revealed = max_poll_offsets(op.value.get("msgs", {}))
            self._learn(self.polled, revealed)
        else:
            return
        if self.tracking:
            self._learn(self.max_offsets, revealed)
        for key in revealed:
            self._forget_if_caught_up(key)

    @staticmethod
    def _learn(offsets: dict[str, int], revealed: dict[str, int]) -> None:
        for key, offset in revealed.items():
            offsets[key] = max(offsets.get(key, offset), offset)

    def _forget_if_caught_up(self, key: str) -> None:
        if self.polled.get(key, -1) >= self.sent.get(key, -1):
            self.sent.pop(key, None)
            self.polled.pop(key, None)

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
