"""This project's checks beyond Maelstrom's verdict: rules of the kafka protocol that
Maelstrom's checker does not enforce. They never change Maelstrom's verdict; they are reported
beside it, and a run is valid only when both pass."""

from __future__ import annotations

from typing import Any

from kafka_node.maelstrom.analysis import Analysis, Case, op_ref, plain
from kafka_node.maelstrom.history import OK
from kafka_node.maelstrom.hostile import HOSTILE_ACCEPTED

#: A node that printed something other than a message, or exited without being killed.
ABORTED = "aborted"
#: A message to an id no client, node or service has.
UNKNOWN_DESTINATION = "unknown-destination"
STRICTER_TYPES = (
    "asked-offset-skip", "asked-offset-nonmonotonic", "unasked-key", "committed-offset-regression",
    HOSTILE_ACCEPTED, UNKNOWN_DESTINATION, ABORTED,
)


def check(analysis: Analysis, *, committed_offsets: bool) -> dict[str, list[Case]]:
    """The stricter anomalies the history shows (hostile-accepted, unknown-destination and
    aborted come from the runner, not from the history)."""
    return {
        **asked_offsets(analysis),
        "unasked-key": unasked_keys(analysis),
        "committed-offset-regression": committed_offset_regressions(analysis) if committed_offsets else [],
    }


def _asked(value: Any) -> dict[str, int] | None:
    """The offsets a poll asked for, per key; None when the history does not say (Maelstrom's
    own history.edn does not)."""
    asked = value.get("offsets") if isinstance(value, dict) else None
    return asked if isinstance(asked, dict) else None


def asked_offsets(analysis: Analysis) -> dict[str, list[Case]]:
    """Every poll's first message of a key must be at the offset it asked for, or at the first
    known offset after it. Maelstrom only compares a client's poll with its previous
    acknowledged poll of the key, so it misses a skip or a rewind on the first poll after an
    assign, and on the poll after one whose commit failed."""
    skips: list[Case] = []
    backwards: list[Case] = []
    for txn in analysis.txns:
        asked = _asked(txn.op.value)
        if txn.op.f != "poll" or asked is None:
            continue
        for key, entries in txn.reads.items():
            if not entries or key not in asked:
                continue
            (first, value), start = entries[0], asked[key]
            if first is None:
                continue
            case = {"key": key, "asked": start, "offset": first, "value": plain(value), "op": op_ref(txn.op, key)}
            if first < start:
                backwards.append(case)
            elif skipped := analysis.known_offsets_between(key, start, first):
                order = analysis.orders[key]
                skips.append({**case, "skipped": [{"offset": o, "values": [plain(v) for v in order.log[o]]}
                                                  for o in skipped]})
    return {"asked-offset-skip": skips, "asked-offset-nonmonotonic": backwards}


def unasked_keys(analysis: Analysis) -> list[Case]:
    """Poll replies holding messages of a key the poll did not ask for."""
    cases = []
    for txn in analysis.txns:
        asked = _asked(txn.op.value)
        if txn.op.f != "poll" or asked is None:
            continue
        for key, entries in txn.reads.items():
            if entries and key not in asked:
                cases.append({"key": key, "offsets": [offset for offset, _ in entries], "asked_keys": len(asked),
                              "op": op_ref(txn.op, key)})
    return cases


def committed_offset_regressions(analysis: Analysis) -> list[Case]:
    """Committed offsets listed below a commit acknowledged before the listing began.

    Stricter than Maelstrom, which accepts last-write-wins commits: this project's rule is
    that a committed offset never moves backwards (see the runner's --no-commit-check).
    A poll op acknowledges its commit just before it completes, and an assign op lists
    committed offsets right after it is invoked, so op times bound both conservatively.
    """
    commits = sorted(
        ((txn.op.time, key, offset, txn.op) for txn in analysis.txns
         if txn.op.f == "poll" and txn.op.type == OK and isinstance(txn.op.value, dict)
         for key, offset in (txn.op.value.get("commit") or {}).items()),
        key=lambda c: c[0],
    )
    listings = sorted(
        ((txn.invocation.time if txn.invocation else txn.op.time, txn.op) for txn in analysis.txns
         if txn.op.f == "assign" and txn.op.type == OK and isinstance(txn.op.value, dict)
         and txn.op.value.get("committed") is not None),
        key=lambda listing: listing[0],
    )
    cases = []
    best: dict[str, tuple[int, Any]] = {}
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
