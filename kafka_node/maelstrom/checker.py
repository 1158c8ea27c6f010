"""Judges a kafka history twice: Maelstrom's verdict (Jepsen's kafka checker, analysis by
analysis, and the stats rule, as `maelstrom test -w kafka` composes them) and, beside it,
this project's stricter checks (see `stricter`). Valid only when both pass."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import msgspec

from kafka_node.maelstrom import stricter
from kafka_node.maelstrom.analysis import Analysis, Case, Token, op_ref, plain, sorted_values
from kafka_node.maelstrom.history import FAIL, INFO, INVOKE, OK, Op, key_order

#: The anomaly types Maelstrom reports for a single-operation kafka history, each of which
#: makes its verdict invalid (jepsen.tests.kafka's error types less those it allows, what its
#: Elle cycle search over write-read and real-time edges finds, and the stats checker).
MAELSTROM_TYPES = (
    "inconsistent-offsets", "duplicate", "lost-write", "unseen", "nonmonotonic-send",
    "poll-skip", "nonmonotonic-poll", "int-poll-skip", "int-nonmonotonic-poll", "G1a",
    "G1c-realtime", "strong-PL-2-cycle-exists", "empty-transaction-graph", "stats", "availability",
)
#: Maelstrom's checkers composed beside the workload's: either fails the verdict even when the
#: workload's analysis is unknown (Jepsen: false beats unknown).
BESIDE_THE_WORKLOAD = ("stats", "availability")
ANOMALY_TYPES = MAELSTROM_TYPES + stricter.STRICTER_TYPES
#: Maelstrom's verdict when its analysis stops with an error (Jepsen's :valid? :unknown).
UNKNOWN = "unknown"
#: Operations the stats rule ignores (Jepsen's kafka stats-checker).
NOT_COUNTED = ("crash", "debug-topic-partitions")
#: What Jepsen's unseen plot takes for the final polls: the run of these ops ending the history.
FINAL_POLL_FS = ("poll", "crash", "assign", "debug-topic-partitions")
#: Jepsen builds, per key, a vector as long as the key's largest offset; a Java vector cannot
#: reach this far.
LARGEST_OFFSET = (1 << 31) - 1


class Verdict(msgspec.Struct):
    """Both verdicts on one history.

    `maelstrom_valid` is True, False or "unknown" (Jepsen's analysis would stop with an error:
    `analysis_errors` say why); `stricter_valid` is the verdict of our own checks; `valid` holds
    only when both pass. `anomalies` maps every type found, Maelstrom's and ours, to its cases.
    """

    valid: bool
    maelstrom_valid: bool | str
    stricter_valid: bool
    anomalies: dict[str, list[Case]]
    analysis_errors: list[Case]
    stats: dict[str, dict[str, int]]  # f -> completion type -> count
    availability: dict[str, Any] | None = None  # with --availability: expected, ok_fraction, valid

    @property
    def validity(self) -> bool | str:
        """Jepsen's three-valued :valid? of both verdicts: False if either fails, else
        "unknown" if Maelstrom's analysis would stop with an error, else True."""
        if self.maelstrom_valid is False or not self.stricter_valid:
            return False
        return self.maelstrom_valid

    @property
    def maelstrom_types(self) -> list[str]:
        return [name for name in MAELSTROM_TYPES if name in self.anomalies]

    @property
    def stricter_types(self) -> list[str]:
        return [name for name in self.anomalies if name not in MAELSTROM_TYPES]

    @property
    def unseen_only_untracked_keys(self) -> bool:
        """True when Maelstrom's verdict reports unseen, and every unseen key is one that no
        final-phase assign named (`key_in_final_assign` false): no acknowledged operation of it
        completed before the main generator stopped tracking keys, so Maelstrom's final polls
        never asked for it. Real Maelstrom reports these too, for any node; the verdict stays
        invalid, and this says why."""
        cases = self.anomalies.get("unseen", [])
        return bool(cases) and all(case.get("key_in_final_assign") is False for case in cases)


def check(history: Sequence[Op], *, committed_offsets: bool = False,
          availability: float | str | None = None) -> Verdict:
    """Both verdicts on `history`. With `committed_offsets`, the stricter checks include
    committed-offset-regression (meaningful across node restarts); with `availability`
    ("total" or a fraction), Maelstrom's availability checker is composed in."""
    analysis = Analysis(history)
    found: dict[str, list[Case]] = {
        "inconsistent-offsets": analysis.inconsistencies,
        "duplicate": duplicates(analysis),
        "lost-write": lost_writes(analysis),
        "unseen": unseen(analysis),
        "nonmonotonic-send": nonmonotonic_sends(analysis),
        **poll_skips_and_nonmonotonic_polls(analysis),
        **internal_poll_skips_and_nonmonotonic_polls(analysis),
        "G1a": aborted_reads(analysis),
        "G1c-realtime": realtime_cycles(analysis),
        "empty-transaction-graph": empty_transaction_graph(analysis),
    }
    # Elle keeps, beside each cycle it names, the cycle-exists case for the union graph of the
    # strongest model that union prohibits: strong-PL-2 (ww, wr and real-time edges).
    found["strong-PL-2-cycle-exists"] = [{**case, "model": "strong-PL-2"} for case in found["G1c-realtime"]]
    stats, unsuccessful = stats_of(analysis)
    found["stats"] = unsuccessful
    found |= stricter.check(analysis, committed_offsets=committed_offsets)
    available = None
    if availability is not None:
        available = availability_of(history, availability)
        found["availability"] = [] if available["valid"] else [available]
    verdict = verdict_of({name: cases for name, cases in found.items() if cases}, analysis_errors(analysis), stats)
    verdict.availability = available
    return verdict


def availability_of(history: Sequence[Op], expected: float | str) -> dict[str, Any]:
    """Maelstrom's availability checker: the fraction of invocations that completed ok (over
    the whole history, final polls included; 1 without any), at least `expected`, or all of
    them when `expected` is "total"."""
    invoked = sum(1 for op in history if op.type == INVOKE)
    ok = sum(1 for op in history if op.type == OK)
    fraction = ok / invoked if invoked else 1.0
    valid = fraction == 1 if expected == "total" else float(expected) <= fraction
    return {"expected": expected, "ok_fraction": round(fraction, 6), "ok": ok, "invoked": invoked, "valid": valid}


def verdict_of(anomalies: dict[str, list[Case]], errors: list[Case], stats: dict[str, dict[str, int]]) -> Verdict:
    """Both verdicts from the anomalies found. Jepsen composes checkers by priority: false
    beats unknown beats true; an analysis error makes the workload checker unknown."""
    ordered = {name: anomalies[name] for name in [*ANOMALY_TYPES, *sorted(anomalies)] if name in anomalies}
    workload: bool | str = UNKNOWN if errors else not any(
        name in MAELSTROM_TYPES and name not in BESIDE_THE_WORKLOAD for name in ordered)
    maelstrom: bool | str = (False if workload is False or any(name in ordered for name in BESIDE_THE_WORKLOAD)
                             else workload)
    stricter_ok = not any(name not in MAELSTROM_TYPES for name in ordered)
    return Verdict(valid=maelstrom is True and stricter_ok, maelstrom_valid=maelstrom, stricter_valid=stricter_ok,
                   anomalies=ordered, analysis_errors=errors, stats=stats)


def with_stricter(verdict: Verdict, name: str, cases: list[Case]) -> Verdict:
    """`verdict` with one more stricter anomaly type (one the history cannot show: a node that
    aborted the test, or accepted hostile input)."""
    if not cases:
        return verdict
    found = verdict_of({**verdict.anomalies, name: cases}, verdict.analysis_errors, verdict.stats)
    found.availability = verdict.availability
    return found


# --- what makes Jepsen's analysis stop (Maelstrom's "unknown") ------------------------------

def analysis_errors(analysis: Analysis) -> list[Case]:
    """Histories on which Jepsen's kafka checker throws instead of judging.

    - A polled value that no send ever attempted (`wr-graph`, `lost-write-cases`:
      :no-writer-of-value), e.g. a node that changes the messages it stores.
    - A key whose acknowledged polls read nothing at a known offset (only empty lists, or
      offsets below 0): `lost-write-cases` takes `(nth last-index->values -1)`, an
      IndexOutOfBoundsException. A node that leaves keys with nothing out of its poll replies
      (as the protocol allows) never meets this.
    - An offset past a Java vector's reach: `datafy-version-order-log` builds, per key, a
      vector as long as its largest offset (offsets far below this already cost Jepsen a
      great deal of memory).
    - A history that does not end in final polls while acknowledged sends or polls named a
      key: `plot-unseen!` reads the time of the first of the final polls, (:time nil), a
      NullPointerException. Maelstrom's runs, and ours, always end in them.
    """
    errors = []
    for key in sorted(analysis.readers_of, key=key_order):
        for value, readers in analysis.readers_of[key].items():
            if value not in analysis.writer_of.get(key, {}):
                errors.append({"error": "no-writer-of-value", "key": key, "value": plain(value),
                               "ops": [op_ref(readers[0].op, key)]})
    for key, values in sorted(analysis.reads_by_type[OK].items(), key=lambda kv: key_order(kv[0])):
        indexed = analysis.orders[key].first_index if key in analysis.orders else {}
        if not any(value in indexed for value in values):
            reader = next(txn for txn in analysis.txns if txn.op.type == OK and key in txn.reads)
            errors.append({"error": "no-read-in-version-order", "key": key, "ops": [op_ref(reader.op, key)]})
    for key in sorted(analysis.orders, key=key_order):
        if (largest := max(analysis.orders[key].log)) > LARGEST_OFFSET:
            errors.append({"error": "offset-too-large", "key": key, "offset": largest})
    last = analysis.last_op
    named = any(txn.writes or txn.reads for txn in analysis.txns if txn.op.type == OK and txn.op.f in ("send", "poll"))
    if named and last is not None and last.f not in FINAL_POLL_FS:
        errors.append({"error": "no-final-polls", "ops": [op_ref(last)]})
    return errors


# --- the log itself --------------------------------------------------------------------------

def duplicates(analysis: Analysis) -> list[Case]:
    """A value at more than one offset of a key (jepsen: duplicate-cases)."""
    cases = []
    for key in sorted(analysis.orders, key=key_order):
        offsets: dict[Token, list[int]] = defaultdict(list)
        for offset, values in sorted(analysis.orders[key].log.items()):
            for value in values:
                offsets[value].append(offset)
        sources = analysis.orders[key].sources
        cases += [{"key": key, "value": plain(value), "count": len(where), "offsets": where,
                   "ops": [op_ref(sources[offset, value].op, key) for offset in where]}
                  for value, where in offsets.items() if len(where) > 1]
    return cases


def lost_writes(analysis: Analysis) -> list[Case]:
    """Values at or below the highest position an acknowledged poll read that no acknowledged
    poll returned, and whose send must have committed (jepsen: lost-write-cases)."""
    cases = []
    for key, read in sorted(analysis.reads_by_type[OK].items(), key=lambda kv: key_order(kv[0])):
        order = analysis.orders.get(key)
        first = order.first_index if order else {}
        bound = max((first[value] for value in read if value in first), default=-1)
        if order is None or bound < 0:
            continue  # Jepsen's analysis fails here: see analysis_errors
        last_at: dict[int, list[Token]] = defaultdict(list)
        for value, index in order.last_index.items():
            last_at[index].append(value)
        top = last_at.get(bound)
        readers = analysis.readers_of.get(key, {}).get(top[0], []) if top else []
        max_read = readers[0] if readers else None
        for index in range(bound + 1):
            for value in last_at.get(index, []):
                writer = analysis.writer_of.get(key, {}).get(value)
                if value in read or writer is None or not analysis.must_have_committed(writer):
                    continue
                cases.append({"key": key, "value": plain(value), "index": first[value],
                              "offset": order.offsets[first[value]], "max-read-index": bound,
                              "writer": op_ref(writer.op, key),
                              "max-read": op_ref(max_read.op, key) if max_read else None})
    return cases


def unseen(analysis: Analysis) -> list[Case]:
    """Acknowledged sends that no acknowledged poll had returned by the end (jepsen: unseen).

    Jepsen folds over acknowledged sends and polls, keeping per key the values sent and not
    yet polled; a key that first appears in the very last of those ops, read but never sent
    successfully, is left holding the values read. That quirk is kept, so that the verdicts
    agree.

    Each case also says whether the final polls' assign named its key (`key_in_final_assign`;
    None when the history has no final-phase assign). Jepsen's final polls assign only the
    keys its generator learned from operations acknowledged while the main generator lived;
    a fresh key whose first acknowledged operation completed after that is never asked for,
    so it is unseen whatever the node does. Maelstrom reports it all the same, and so do we."""
    outstanding: dict[str, set[Token]] = {}
    polled: dict[str, set[Token]] = defaultdict(set)
    read_only_just_now: list[str] = []
    for txn in analysis.txns:
        if txn.op.type != OK or txn.op.f not in ("send", "poll"):
            continue
        for key in read_only_just_now:
            outstanding[key] -= polled[key]
        read_only_just_now = []
        for key in txn.writes.keys() | txn.reads.keys():
            sent = outstanding.get(key)
            written = {value for _, value in txn.writes.get(key, [])}
            polled[key].update(value for _, value in txn.reads.get(key, []))
            if sent is None and not written:  # the quirk: the key holds what was read
                outstanding[key] = set(polled[key])
                read_only_just_now.append(key)
            else:
                outstanding[key] = ((sent or set()) | written) - polled[key]
    offsets = {(key, value): txn.writes[key][0][0] for key, writers in analysis.writer_of.items()
               for value, txn in writers.items() if txn.op.type == OK}
    final = final_assign_keys(analysis)
    return [{"key": key, "count": len(values), "values": sorted_values(values),
             "offsets": sorted(o for v in values if (o := offsets.get((key, v))) is not None),
             "ops": [op_ref(analysis.writer_of[key][v].op, key) for v in values if v in analysis.writer_of[key]],
             "key_in_final_assign": None if final is None else key in final}
            for key, values in sorted(outstanding.items(), key=lambda kv: key_order(kv[0])) if values]


def final_assign_keys(analysis: Analysis) -> set[str] | None:
    """Every key the final polls' assigns named, asked or acknowledged, whatever their outcome;
    None when the history has none. Jepsen's final-polls generator is the only one that assigns
    with :seek-to-beginning? (the main phase's assigns never seek), so those are the ones."""
    keys: set[str] | None = None
    for txn in analysis.txns:
        if txn.op.f != "assign":
            continue
        for op in (txn.invocation, txn.op):
            if op is not None and isinstance(op.value, dict) and op.value.get("seek_to_beginning") is True:
                keys = (keys or set()) | set(_assigned(op))
    return keys


def aborted_reads(analysis: Analysis) -> list[Case]:
    """G1a: an acknowledged poll returned a value whose send failed definitely."""
    failed = analysis.writes_by_type[FAIL]
    return [{"key": key, "value": plain(value), "offset": offset,
             "writer": op_ref(analysis.writer_of[key][value].op, key), "reader": op_ref(txn.op, key)}
            for txn in analysis.txns if txn.op.type == OK
            for key, entries in txn.reads.items()
            for offset, value in entries if value in failed.get(key, ())]


def realtime_cycles(analysis: Analysis) -> list[Case]:
    """G1c-realtime, as Elle finds it in a graph of write-read edges (send -> each poll that read
    its value) and real-time edges (each acknowledged op -> every op invoked after it
    completed): an acknowledged poll read a value whose send was invoked only after the poll
    completed. With one micro-op per operation, every cycle of that graph holds such a pair,
    and each such pair is a cycle of two edges."""
    cases = []
    for txn in analysis.txns:
        if txn.op.type != OK:
            continue
        for key, entries in txn.reads.items():
            for _, value in entries:
                writer = analysis.writer_of.get(key, {}).get(value)
                if writer is None or writer is txn:
                    continue
                invoked = writer.invocation.index if writer.invocation else writer.op.index
                if invoked > txn.op.index:
                    cases.append({"key": key, "value": plain(value),
                                  "cycle": [op_ref(writer.op, key), op_ref(txn.op, key)]})
    return cases


def empty_transaction_graph(analysis: Analysis) -> list[Case]:
    """Elle's :empty-transaction-graph: no send or poll completed before another began, and no
    poll read a value some other operation sent, so there is nothing to search. Jepsen's kafka
    checker does not allow it: such a history is invalid."""
    if analysis.last_op is None:
        return []  # no client operation at all: Jepsen searches for no cycle
    txns = [txn for txn in analysis.txns if txn.op.f in ("send", "poll")]
    first_ok = min((txn.op.index for txn in txns if txn.op.type == OK), default=None)
    if first_ok is not None and any(txn.invocation and txn.invocation.index > first_ok for txn in txns):
        return []
    if any(writer is not txn for txn in txns for key, entries in txn.reads.items() for _, value in entries
           if (writer := analysis.writer_of.get(key, {}).get(value)) is not None):
        return []
    return [{"reason": f"{len(txns)} send and poll operations, none after another and none reading another's "
                       "message: Elle's cycle search has nothing to work on"}]


# --- order, per client process and inside one poll -------------------------------------------

def _delta(analysis: Analysis, key: str, before: Token | None, after: Token | None) -> tuple[int, list[Any]]:
    """Jepsen's delta between two values of a key: their distance in the dense version order,
    or 1 when either index is unknown (then nothing can be said); and, for a delta over 1, the
    values skipped."""
    low, high = analysis.index_of(key, before), analysis.index_of(key, after)
    if low is None or high is None:
        return 1, []
    return high - low, analysis.skipped(key, low, high) if high - low > 1 else []


def poll_skips_and_nonmonotonic_polls(analysis: Analysis) -> dict[str, list[Case]]:
    """Per process, each poll's first value of a key against the last value the process's last
    acknowledged poll of that key read (jepsen: poll-skip+nonmonotonic-cases). An ok or info
    assign keeps the memory of the keys it assigns only; a failed one changes nothing; polls
    that failed or timed out are judged when they carry reads, but never remembered."""
    skips: list[Case] = []
    backwards: list[Case] = []
    memory: dict[int | str, dict[str, Any]] = defaultdict(dict)  # process -> key -> last ok reading txn
    for txn in analysis.txns:
        op, last = txn.op, memory[txn.op.process]
        if op.f in ("assign", "subscribe"):
            if op.type != FAIL:
                keys = set(_assigned(op))
                memory[op.process] = {key: txn for key, txn in last.items() if key in keys}
            continue
        if op.f != "poll":
            continue
        for key, entries in txn.reads.items():
            previous = last.get(key)
            if previous is None:
                continue
            before_entries = previous.reads[key]
            before = before_entries[-1][1] if before_entries else None
            after = entries[0][1] if entries else None
            delta, skipped = _delta(analysis, key, before, after)
            if delta > 1:
                skips.append({"key": key, "delta": delta, "skipped": skipped,
                              "offsets": [before_entries[-1][0], entries[0][0]],
                              "ops": [op_ref(previous.op, key), op_ref(op, key)]})
            elif delta < 1:
                backwards.append({"key": key, "values": [plain(before), plain(after)], "delta": delta,
                                  "offsets": [before_entries[-1][0], entries[0][0]],
                                  "ops": [op_ref(previous.op, key), op_ref(op, key)]})
        if op.type == OK:
            last.update(dict.fromkeys(txn.reads, txn))
    return {"poll-skip": skips, "nonmonotonic-poll": backwards}


def _assigned(op: Op) -> list[str]:
    return op.value.get("keys", []) if isinstance(op.value, dict) else []


def nonmonotonic_sends(analysis: Analysis) -> list[Case]:
    """Per process, a send to a key ordered at or before the process's previous send to it
    (jepsen: nonmonotonic-send-cases). Indeterminate sends count (their value may be known from
    a poll); an ok or info assign forgets the keys it does not assign."""
    cases = []
    memory: dict[int | str, dict[str, Any]] = defaultdict(dict)
    for txn in analysis.txns:
        op, last = txn.op, memory[txn.op.process]
        if op.type not in (OK, INFO):
            continue
        if op.f in ("assign", "subscribe"):
            keys = set(_assigned(op))
            memory[op.process] = {key: txn for key, txn in last.items() if key in keys}
            continue
        if op.f != "send":
            continue
        for key, entries in txn.writes.items():
            if previous := last.get(key):
                (low_offset, before), (high_offset, after) = previous.writes[key][-1], entries[0]
                delta, _ = _delta(analysis, key, before, after)
                if delta < 1:
                    cases.append({"key": key, "values": [plain(before), plain(after)], "delta": delta,
                                  "offsets": [low_offset, high_offset],
                                  "ops": [op_ref(previous.op, key), op_ref(op, key)]})
            last[key] = txn
    return cases


def internal_poll_skips_and_nonmonotonic_polls(analysis: Analysis) -> dict[str, list[Case]]:
    """Inside one poll, a key's successive values out of version order or jumping over known
    values (jepsen: int-poll-skip+nonmonotonic-cases), whatever the poll's outcome."""
    skips: list[Case] = []
    backwards: list[Case] = []
    for txn in analysis.txns:
        for key, entries in txn.reads.items():
            for (low_offset, before), (high_offset, after) in itertools.pairwise(entries):
                delta, skipped = _delta(analysis, key, before, after)
                case = {"key": key, "values": [plain(before), plain(after)], "delta": delta,
                        "offsets": [low_offset, high_offset], "op": op_ref(txn.op, key)}
                if delta > 1:
                    skips.append({**case, "skipped": skipped})
                elif delta < 1:
                    backwards.append(case)
    return {"int-poll-skip": skips, "int-nonmonotonic-poll": backwards}


# --- stats -----------------------------------------------------------------------------------

def stats_of(analysis: Analysis) -> tuple[dict[str, dict[str, int]], list[Case]]:
    """Completions per operation and outcome, and Jepsen's stats rule: every kind of operation
    in the history (crashes aside) must have succeeded at least once."""
    counts: Counter[tuple[str, str]] = Counter((txn.op.f, txn.op.type) for txn in analysis.txns)
    stats: dict[str, dict[str, int]] = {}
    for (f, kind), n in sorted(counts.items()):
        stats.setdefault(f, {OK: 0, FAIL: 0, INFO: 0})[kind] = n
    unsuccessful = [{"f": f, **by_type} for f, by_type in stats.items()
                    if f not in NOT_COUNTED and by_type.get(OK, 0) == 0]
    return stats, unsuccessful
