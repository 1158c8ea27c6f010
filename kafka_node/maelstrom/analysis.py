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
    by_index: list[Token] = field(default_factory=list)  # dense index -> the offset's first value
    by_value: dict[Token, int] = field(default_factory=dict)  # value -> its (last) dense index
    offsets: list[int] = field(default_factory=list)  # dense index -> offset
    first_index: dict[Token, int] = field(default_factory=dict)  # value -> first dense index
    last_index: dict[Token, int] = field(default_factory=dict)  # value -> last dense index


class Analysis:
    """Every index the anomaly searches share, built once from the history."""

    def __init__(self, history: Sequence[Op]) -> None:
        ops = [op if op.index >= 0 else msgspec.structs.replace(op, index=i) for i, op in enumerate(history)]
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
                index = len(order.by_index)
                order.by_value[values[0]] = index
                for value in values:
                    order.first_index.setdefault(value, index)
                    order.last_index[value] = index
                order.by_index.append(values[0])
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
