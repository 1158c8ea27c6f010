"""The indexes Jepsen's kafka checker builds from a history, once, for every analysis: each
completion's reads and writes, the version order of each key, and the writer and readers of
each value. Mirrors `analysis` in jepsen/src/jepsen/tests/kafka.clj (jepsen-io/jepsen)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from kafka_node.maelstrom.history import FAIL, INFO, OK, Op, key_order, pairs

Case = dict[str, Any]
#: A message value as the analyses compare it: ints and strings as they are, anything else as
#: its JSON text with sorted keys (so {"a":1,"b":2} equals {"b":2,"a":1}, as in Clojure, and
#: 1 differs from 1.0 and from true, as in Clojure).
Token = Any


def token(value: Any) -> Token:
    if type(value) in (int, str):
        return value
    return ("json", msgspec.json.encode(value, order="sorted"))


def plain(value: Token) -> Any:
    """The message value a token stands for (the inverse of `token`)."""
    return msgspec.json.decode(value[1]) if isinstance(value, tuple) else value


def _sort_key(value: Token) -> tuple:
    """A total order over tokens of mixed kinds, for stable reports."""
    if isinstance(value, int):
        return (0, value, "")
    if isinstance(value, str):
        return (1, 0, value)
    return (2, 0, value[1].decode())


def sorted_values(values: Any) -> list[Any]:
    return [plain(v) for v in sorted(values, key=_sort_key)]


def _offset(value: Any) -> int | None:
    return value if type(value) is int else None


# --- Clojure's set order ------------------------------------------------------------------------
# Where one offset holds several values, Jepsen takes `(first (set values))` as that offset's
# place in the version order: the first value in a PersistentHashSet's order, which follows the
# values' Clojure hashes (Murmur3), five bits at a time from the lowest. Message values in
# Maelstrom's kafka workload are integers; integers and strings are hashed as Clojure does, and
# a set holding anything else keeps the order in which the values were first seen.

_MASK = 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _MASK


def _mix_k1(k1: int) -> int:
    return (_rotl((k1 * 0xCC9E2D51) & _MASK, 15) * 0x1B873593) & _MASK


def _mix_h1(h1: int, k1: int) -> int:
    return (_rotl(h1 ^ k1, 13) * 5 + 0xE6546B64) & _MASK


def _fmix(h1: int, length: int) -> int:
    h1 ^= length
    h1 ^= h1 >> 16
    h1 = (h1 * 0x85EBCA6B) & _MASK
    h1 ^= h1 >> 13
    h1 = (h1 * 0xC2B2AE35) & _MASK
    return h1 ^ (h1 >> 16)


def clojure_hash(value: Token) -> int | None:
    """`(hash value)` as an unsigned 32-bit number, for longs and strings; None otherwise."""
    if type(value) is int and -(1 << 63) <= value < (1 << 63):
        if value == 0:
            return 0
        bits = value & 0xFFFFFFFFFFFFFFFF
        return _fmix(_mix_h1(_mix_h1(0, _mix_k1(bits & _MASK)), _mix_k1(bits >> 32)), 8)
    if type(value) is str:
        code = 0
        units = value.encode("utf-16-le", "surrogatepass")
        for i in range(0, len(units), 2):  # Java's String.hashCode, over UTF-16 code units
            code = (31 * code + int.from_bytes(units[i:i + 2], "little")) & _MASK
        return 0 if code == 0 else _fmix(_mix_h1(0, _mix_k1(code)), 4)
    return None


def clojure_first(values: list[Token]) -> Token:
    """The value `(first (set values))` gives, for values Clojure would hash as we do."""
    hashes = [clojure_hash(value) for value in values]
    if len(values) == 1 or None in hashes or len(set(hashes)) < len(hashes):
        return values[0]
    chunks = [tuple((h >> shift) & 31 for shift in range(0, 32, 5)) for h in hashes]  # type: ignore[operator]
    return values[chunks.index(min(chunks))]


@dataclass
class Txn:
    """One completed operation as Jepsen's analyses see it: what it wrote and what it read.

    A send writes one value, with its offset when the history knows it (an acknowledged send);
    a poll reads, per key, [offset, value] pairs in reply order. Maelstrom records no reads
    for a poll that failed or timed out, but histories from elsewhere may, and Jepsen counts
    them where it says so.
    """

    op: Op
    invocation: Op | None
    writes: dict[str, list[tuple[int | None, Token]]]
    reads: dict[str, list[tuple[int | None, Token]]]


def txn_of(invocation: Op | None, op: Op) -> Txn:
    value = op.value if isinstance(op.value, dict) else {}
    writes: dict[str, list[tuple[int | None, Token]]] = {}
    reads: dict[str, list[tuple[int | None, Token]]] = {}
    if op.f == "send" and "key" in value:
        writes[value["key"]] = [(_offset(value.get("offset")), token(value.get("msg")))]
    elif op.f == "poll":
        for key, msgs in (value.get("msgs") or {}).items():
            reads[key] = [(_offset(offset), token(msg)) for offset, msg in msgs]
    return Txn(op, invocation, writes, reads)


@dataclass
class KeyOrder:
    """The version order of one key: every value observed at each offset, and the dense order
    (offsets with no known value left out) that skips and deltas are measured in."""

    log: dict[int, list[Token]] = field(default_factory=dict)  # offset -> values, first seen first
    sources: dict[tuple[int, Token], Txn] = field(default_factory=dict)  # the first op to show each
    by_index: list[Token] = field(default_factory=list)  # dense index -> the offset's value (clojure_first)
    by_value: dict[Token, int] = field(default_factory=dict)  # value -> its (last) dense index
    offsets: list[int] = field(default_factory=list)  # dense index -> offset
    first_index: dict[Token, int] = field(default_factory=dict)  # value -> first dense index
    last_index: dict[Token, int] = field(default_factory=dict)  # value -> last dense index


class Analysis:
    """Every index the anomaly searches share, built once from the history."""

    def __init__(self, history: Sequence[Op]) -> None:
        ops = [op if op.index >= 0 else msgspec.structs.replace(op, index=i) for i, op in enumerate(history)
               if type(op.process) is int]  # Jepsen's analysis takes the client ops only
        self.last_op = ops[-1] if ops else None
        self.txns = [txn_of(invocation, op) for invocation, op in pairs(ops)]
        self.reads_by_type: dict[str, dict[str, set[Token]]] = {OK: {}, INFO: {}, FAIL: {}}
        self.writes_by_type: dict[str, dict[str, set[Token]]] = {OK: {}, INFO: {}, FAIL: {}}
        self.writer_of: dict[str, dict[Token, Txn]] = defaultdict(dict)  # the last op that wrote it
        self.readers_of: dict[str, dict[Token, list[Txn]]] = defaultdict(lambda: defaultdict(list))
        for txn in self.txns:
            kind = txn.op.type
            for key, entries in txn.reads.items():
                self.reads_by_type.setdefault(kind, {}).setdefault(key, set()).update(v for _, v in entries)
                for _, value in entries:
                    self.readers_of[key][value].append(txn)
            for key, entries in txn.writes.items():
                self.writes_by_type.setdefault(kind, {}).setdefault(key, set()).update(v for _, v in entries)
                for _, value in entries:
                    self.writer_of[key][value] = txn
        self.orders, self.inconsistencies = self._version_orders()

    def must_have_committed(self, txn: Txn) -> bool:
        """Jepsen's must-have-committed?: acknowledged, or indeterminate with one of its
        writes read by an acknowledged poll."""
        if txn.op.type == OK:
            return True
        ok_reads = self.reads_by_type[OK]
        return txn.op.type == INFO and any(
            value in ok_reads.get(key, ()) for key, entries in txn.writes.items() for _, value in entries)

    def _version_orders(self) -> tuple[dict[str, KeyOrder], list[Case]]:
        """Offsets from sends that must have committed and from every poll, whatever its outcome
        (a poll must never return bad data). Offsets below 0 never enter Jepsen's logs."""
        orders: dict[str, KeyOrder] = defaultdict(KeyOrder)

        def observe(txn: Txn, key: str, entries: list[tuple[int | None, Token]]) -> None:
            for offset, value in entries:
                if offset is not None and offset >= 0:
                    values = orders[key].log.setdefault(offset, [])
                    if value not in values:
                        values.append(value)
                        orders[key].sources[offset, value] = txn

        for txn in self.txns:
            if txn.op.f not in ("send", "poll"):
                continue
            if self.must_have_committed(txn):
                for key, entries in txn.writes.items():
                    observe(txn, key, entries)
            for key, entries in txn.reads.items():
                observe(txn, key, entries)
        inconsistencies = []
        for key in sorted(orders, key=key_order):
            order = orders[key]
            for offset in sorted(order.log):
                values = order.log[offset]
                if len(values) > 1:
                    inconsistencies.append({"key": key, "offset": offset, "index": len(order.by_index),
                                            "values": sorted_values(values),
                                            "ops": [op_ref(order.sources[offset, v].op, key) for v in values]})
                index, first = len(order.by_index), clojure_first(values)
                order.by_value[first] = index
                for value in values:
                    order.first_index.setdefault(value, index)
                    order.last_index[value] = index
                order.by_index.append(first)
                order.offsets.append(offset)
        return dict(orders), inconsistencies

    def index_of(self, key: str, value: Token | None) -> int | None:
        order = self.orders.get(key)
        return None if order is None or value is None else order.by_value.get(value)

    def skipped(self, key: str, low: int, high: int) -> list[Any]:
        """The values at dense indices strictly between low and high (Jepsen's :skipped)."""
        return [plain(v) for v in self.orders[key].by_index[low + 1:high]]

    def known_offsets_between(self, key: str, low: int, high: int) -> list[int]:
        """Offsets of `key` holding a known value, with low <= offset < high."""
        order = self.orders.get(key)
        return [] if order is None else [o for o in order.offsets if low <= o < high]


def op_ref(op: Op, key: str | None = None) -> dict[str, Any]:
    """An op as an anomaly cites it: its identity, and its value narrowed to `key`."""
    ref: dict[str, Any] = {"index": op.index, "time": op.time, "process": op.process,
                           "client": op.client, "type": op.type, "f": op.f}
    value = op.value
    if key is not None and isinstance(value, dict) and op.f in ("poll", "assign"):
        narrowed = {name: part[key] for name, part in value.items() if isinstance(part, dict) and key in part}
        if op.f == "assign":
            narrowed["keys"] = len(value.get("keys", []))
        value = narrowed
    ref["value"] = value
    if op.error:
        ref["error"] = op.error
    return ref
