"""Judges a kafka history: rebuilds each key's log (offset -> values) from acknowledged sends
and polls, then finds every anomaly Maelstrom's kafka checker reports, and commit regressions."""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import msgspec

from kafka_node.maelstrom.history import FAIL, OK, Op, key_order, pairs

ANOMALY_TYPES = (
    "inconsistent-offsets", "duplicate", "lost-write", "unseen", "nonmonotonic-send",
    "poll-skip", "nonmonotonic-poll", "int-poll-skip", "int-nonmonotonic-poll", "unasked-key",
    "G1a", "committed-offset-regression", "stats",
)
#: Operations that must succeed at least once for a run to be valid (Jepsen's stats checker).
MUST_SUCCEED = ("send", "poll", "assign")

Case = dict[str, Any]


class Verdict(msgspec.Struct):
    valid: bool
    anomalies: dict[str, list[Case]]  # type -> cases, only types found
    stats: dict[str, dict[str, int]]  # f -> completion type -> count


def check(history: Sequence[Op], *, committed_offsets: bool = False) -> Verdict:
    """Every anomaly in `history`. With `committed_offsets`, also flag committed offsets read
    back below a commit acknowledged before the read began (meaningful across restarts; a rule
    stricter than Maelstrom's, which lets a later, lower commit win)."""
    analysis = _Analysis(history)
    found: dict[str, list[Case]] = {
        "inconsistent-offsets": analysis.inconsistent_offsets(),
        "duplicate": analysis.duplicates(),
        "lost-write": analysis.lost_writes(),
        "unseen": analysis.unseen(),
        "nonmonotonic-send": analysis.nonmonotonic_sends(),
        **analysis.poll_skips_and_nonmonotonic_polls(),
        "unasked-key": analysis.unasked_keys(),
        **analysis.internal_poll_skips_and_nonmonotonic_polls(),
        "G1a": analysis.aborted_reads(),
        "committed-offset-regression": (analysis.committed_offset_regressions() if committed_offsets
                                        else []),
        "stats": analysis.stats_failures(),
    }
    anomalies = {name: found[name] for name in ANOMALY_TYPES if found.get(name)}
    return Verdict(valid=not anomalies, anomalies=anomalies, stats=analysis.stats)


def _token(value: Any) -> Any:
    """A hashable stand-in for a message value (JSON text for anything but int and str)."""
    if type(value) in (int, str):
        return value
    return ("json", msgspec.json.encode(value, order="sorted"))


def _plain(token: Any) -> Any:
    """The message value a token stands for (the inverse of _token)."""
    return msgspec.json.decode(token[1]) if isinstance(token, tuple) else token


def _asked(op: Op) -> dict[str, int] | None:
    """The offsets a poll asked for, per key; None when the history does not say."""
    asked = op.value.get("offsets") if isinstance(op.value, dict) else None
    return asked if isinstance(asked, dict) else None


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


class _Analysis:
    """Indexes built once from the history, shared by every anomaly search."""

    def __init__(self, history: Sequence[Op]) -> None:
        ops = [op if op.index >= 0 else msgspec.structs.replace(op, index=i) for i, op in enumerate(history)]
        self.completions = list(pairs(ops))
        self.log: dict[str, dict[int, dict[Any, Op]]] = defaultdict(dict)  # key -> offset -> token -> first source
        self.writer: dict[tuple[str, Any], Op] = {}  # (key, token) -> send completion
        self.ok_sends: list[tuple[Op, str, Any, int]] = []
        self.reads: list[tuple[Op, str, list[tuple[int, Any]]]] = []  # every poll result, per key
        self.reads_by_op: dict[int, list[tuple[str, list[tuple[int, Any]]]]] = defaultdict(list)
        self.read: dict[str, dict[Any, Op]] = defaultdict(dict)  # key -> token -> first reader
        self.stats: dict[str, dict[str, int]] = {}
        counts: Counter[tuple[str, str]] = Counter()
        for _, op in self.completions:
            counts[op.f, op.type] += 1
            value = op.value if isinstance(op.value, dict) else {}
            if op.f == "send" and "key" in value:
                token = _token(value.get("msg"))
                self.writer[value["key"], token] = op
                if op.type == OK:
                    self.ok_sends.append((op, value["key"], token, value["offset"]))
                    self._observe(value["key"], value["offset"], token, op)
            elif op.f == "poll":
                for key, msgs in (value.get("msgs") or {}).items():
                    entries = [(offset, _token(msg)) for offset, msg in msgs]
                    self.reads.append((op, key, entries))
                    self.reads_by_op[op.index].append((key, entries))
                    for offset, token in entries:
                        self._observe(key, offset, token, op)
                        self.read[key].setdefault(token, op)
        for (f, kind), n in sorted(counts.items()):
            self.stats.setdefault(f, {OK: 0, FAIL: 0, "info": 0})[kind] = n
        self.offsets = {key: sorted(log) for key, log in self.log.items()}

    def _observe(self, key: str, offset: int, token: Any, op: Op) -> None:
        self.log[key].setdefault(offset, {}).setdefault(token, op)

    def _between(self, key: str, low: int, high: int) -> list[int]:
        """Known offsets of `key` strictly between low and high."""
        known = self.offsets.get(key, [])
        return known[bisect.bisect_right(known, low):bisect.bisect_left(known, high)]

    def _values_at(self, key: str, offset: int) -> list[Any]:
        return [_plain(t) for t in self.log[key].get(offset, {})]

    def _skipped(self, key: str, low: int, high: int) -> list[dict[str, Any]]:
        return [{"offset": o, "values": self._values_at(key, o)} for o in self._between(key, low, high)]

    # --- the log itself --------------------------------------------------------------

    def inconsistent_offsets(self) -> list[Case]:
        return [
            {"key": key, "offset": offset, "values": [_plain(t) for t in sources],
             "ops": [op_ref(op, key) for op in sources.values()]}
            for key in sorted(self.log, key=key_order)
            for offset, sources in sorted(self.log[key].items()) if len(sources) > 1
        ]

    def duplicates(self) -> list[Case]:
        cases = []
        for key in sorted(self.log, key=key_order):
            where: dict[Any, list[tuple[int, Op]]] = defaultdict(list)
            for offset, sources in sorted(self.log[key].items()):
                for token, op in sources.items():
                    where[token].append((offset, op))
            cases += [
                {"key": key, "value": _plain(token), "offsets": [o for o, _ in seen],
                 "ops": [op_ref(op, key) for _, op in seen]}
                for token, seen in where.items() if len(seen) > 1
            ]
        return cases

    # --- acknowledged sends that polls did not return ---------------------------------

    def lost_writes(self) -> list[Case]:
        """Acknowledged sends never polled, at or below the highest position some poll read."""
        first: dict[str, dict[Any, int]] = defaultdict(dict)
        last: dict[str, dict[Any, int]] = defaultdict(dict)
        for key, log in self.log.items():
            for offset in self.offsets[key]:
                for token in log[offset]:
                    first[key].setdefault(token, offset)
                    last[key][token] = offset
        bounds = {key: max((first[key][t] for t in read if t in first[key]), default=-1)
                  for key, read in self.read.items()}
        cases = []
        for op, key, token, _ in self.ok_sends:
            bound = bounds.get(key, -1)
            if token in self.read[key] or last[key][token] > bound:
                continue
            max_reader = next(self.read[key][t] for t in self.log[key][bound] if t in self.read[key])
            cases.append({"key": key, "value": _plain(token), "offset": last[key][token],
                          "max_read_offset": bound, "ops": [op_ref(op, key), op_ref(max_reader, key)]})
        return sorted(cases, key=lambda c: (key_order(c["key"]), c["offset"]))

    def unseen(self) -> list[Case]:
        """Acknowledged sends that no poll had returned by the end of the test."""
        cases = [{"key": key, "value": _plain(token), "offset": offset, "ops": [op_ref(op, key)]}
                 for op, key, token, offset in self.ok_sends if token not in self.read.get(key, {})]
        return sorted(cases, key=lambda c: (key_order(c["key"]), c["offset"]))

    def aborted_reads(self) -> list[Case]:
        """G1a: polls that returned a message whose send failed with a definite error."""
        cases = []
        for op, key, entries in self.reads:
            for offset, token in entries:
                writer = self.writer.get((key, token))
                if writer is not None and writer.type == FAIL:
                    cases.append({"key": key, "value": _plain(token), "offset": offset,
                                  "ops": [op_ref(writer, key), op_ref(op, key)]})
        return cases

    # --- order, per client and inside one poll ---------------------------------------

    def nonmonotonic_sends(self) -> list[Case]:
        """One client's successive sends to a key whose offsets do not increase."""
        cases = []
        last: dict[tuple[int, str], tuple[int, Any, Op]] = {}
        for op, key, token, offset in self.ok_sends:
            previous = last.get((op.process, key))
            if previous and offset <= previous[0]:
                cases.append({"key": key, "offsets": [previous[0], offset],
                              "values": [_plain(previous[1]), _plain(token)],
                              "ops": [op_ref(previous[2], key), op_ref(op, key)]})
            last[op.process, key] = (offset, token, op)
        return cases

    def poll_skips_and_nonmonotonic_polls(self) -> dict[str, list[Case]]:
        """A poll's first message of a key must be the next one its client asked for: right
        after the last message of that key the client read (if it read one since its last
        assign), else at the offset the poll asked for or the first known one after it."""
        skips: list[Case] = []
        backwards: list[Case] = []
        last: dict[int, dict[str, tuple[int, Any, Op]]] = defaultdict(dict)
        for _, op in self.completions:
            if op.f == "assign" and op.type == OK:
                last[op.process] = {}
            if op.f != "poll":
                continue
            asked = _asked(op)
            for key, entries in self.reads_by_op.get(op.index, []):
                if not entries or (asked is not None and key not in asked):
                    continue  # an unasked key is its own anomaly; the client does not adopt it
                first, first_token = entries[0]
                if previous := last[op.process].get(key):
                    low, low_token, before = previous
                    case = {"key": key, "offsets": [low, first], "values": [_plain(low_token), _plain(first_token)],
                            "ops": [op_ref(before, key), op_ref(op, key)]}
                    wrong_way, skipped = first <= low, self._skipped(key, low, first)
                elif asked is not None:
                    case = {"key": key, "asked": asked[key], "offset": first, "value": _plain(first_token),
                            "ops": [op_ref(op, key)]}
                    wrong_way, skipped = first < asked[key], self._skipped(key, asked[key] - 1, first)
                else:
                    wrong_way, skipped = False, []
                if wrong_way:
                    backwards.append(case)
                elif skipped:
                    skips.append({**case, "skipped": skipped})
                last[op.process][key] = (*entries[-1], op)
        return {"poll-skip": skips, "nonmonotonic-poll": backwards}

    def unasked_keys(self) -> list[Case]:
        """Poll replies holding messages of a key the poll did not ask for."""
        cases = []
        for op, key, entries in self.reads:
            asked = _asked(op)
            if entries and asked is not None and key not in asked:
                cases.append({"key": key, "offsets": [offset for offset, _ in entries], "asked_keys": len(asked),
                              "ops": [op_ref(op, key)]})
        return cases

    def internal_poll_skips_and_nonmonotonic_polls(self) -> dict[str, list[Case]]:
        """Inside one poll reply, a key's messages out of order or jumping over known ones."""
        skips: list[Case] = []
        backwards: list[Case] = []
        for op, key, entries in self.reads:
            for (low, low_token), (high, high_token) in zip(entries, entries[1:]):
                if high == low + 1:
                    continue
                case = {"key": key, "offsets": [low, high], "values": [_plain(low_token), _plain(high_token)],
                        "ops": [op_ref(op, key)]}
                if high <= low:
                    backwards.append(case)
                elif skipped := self._skipped(key, low, high):
                    skips.append({**case, "skipped": skipped})
        return {"int-poll-skip": skips, "int-nonmonotonic-poll": backwards}

    # --- committed offsets and stats -------------------------------------------------

    def committed_offset_regressions(self) -> list[Case]:
        """Committed offsets listed below a commit acknowledged before the listing began.

        Stricter than Maelstrom, which accepts last-write-wins commits: this project's rule is
        that a committed offset never moves backwards (see cli's --no-commit-check).
        A poll op acknowledges its commit just before it completes, and an assign op lists
        committed offsets right after it is invoked, so op times bound both conservatively.
        """
        commits = sorted(
            ((op.time, key, offset, op) for _, op in self.completions
             if op.f == "poll" and op.type == OK and isinstance(op.value, dict)
             for key, offset in (op.value.get("commit") or {}).items()),
            key=lambda c: c[0],
        )
        listings = sorted(
            ((invocation.time if invocation else op.time), op) for invocation, op in self.completions
            if op.f == "assign" and op.type == OK and isinstance(op.value, dict)
            and op.value.get("committed") is not None
        )
        cases = []
        best: dict[str, tuple[int, Op]] = {}
        done = 0
        for began, op in listings:
            while done < len(commits) and commits[done][0] < began:
                _, key, offset, commit_op = commits[done]
                if offset > best.get(key, (-1, None))[0]:
                    best[key] = (offset, commit_op)
                done += 1
            listed = op.value["committed"]
            for key in op.value.get("keys", []):
                if key in best and (listed.get(key) is None or listed[key] < best[key][0]):
                    cases.append({"key": key, "committed": best[key][0], "listed": listed.get(key),
                                  "ops": [op_ref(best[key][1], key), op_ref(op, key)]})
        return cases

    def stats_failures(self) -> list[Case]:
        return [{"f": f, **self.stats.get(f, {OK: 0, FAIL: 0, "info": 0})}
                for f in MUST_SUCCEED if self.stats.get(f, {}).get(OK, 0) == 0]
