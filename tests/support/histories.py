"""Hand-built histories of the kafka workload, for the checker's tests: one helper per
operation, numbered and timed by `history`, and the table of histories that must be flagged."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from kafka_node.maelstrom.history import Op

# --- building histories --------------------------------------------------------------------
# Each helper returns the invocation and completion of one operation by `process`; `history`
# numbers and times them in order, 1 ms apart, and gives each poll the offsets its client
# would have asked for, as Maelstrom's client keeps them: an assign keeps the position of a
# key the client holds and starts a new one at 0 (Maelstrom's client never finds the committed
# offsets it lists), a seek to the beginning starts every key at 0, and each key a poll
# returned moves past its highest offset.


def send(process: int, key: str, msg: Any, offset: int | None, type: str = "ok") -> list[Op]:
    value = {"key": key, "msg": msg}
    done = {**value, "offset": offset} if offset is not None else value
    return [Op(process=process, type="invoke", f="send", value=value),
            Op(process=process, type=type, f="send", value=done, error=None if type == "ok" else "error 11: no")]


def poll(process: int, msgs: dict[str, list[list[Any]]], type: str = "ok",
         asked: dict[str, int] | None = None) -> list[Op]:
    """A poll reading `msgs`; `asked` overrides the offsets `history` would fill in. A poll
    that did not complete ok records no reads, as Maelstrom's client does."""
    given = {} if asked is None else {"offsets": asked}
    done = {**given, "msgs": msgs} if type == "ok" else {**given, "uncounted_msgs": msgs}
    return [Op(process=process, type="invoke", f="poll", value=dict(given)),
            Op(process=process, type=type, f="poll", value=done, error=None if type == "ok" else "error 11: no")]


def assign(process: int, keys: list[str], committed: dict[str, int] | None = None, type: str = "ok") -> list[Op]:
    """An assign listing `committed` offsets (with None: a seek to the beginning)."""
    value = {"keys": keys, "seek_to_beginning": committed is None}
    done = dict(value) if committed is None else {**value, "committed": committed}
    return [Op(process=process, type="invoke", f="assign", value=value),
            Op(process=process, type=type, f="assign", value=done, error=None if type == "ok" else "timeout")]


def history(*parts: list[Op]) -> list[Op]:
    ops = [op for part in parts for op in part]
    positions: dict[int, dict[str, int]] = defaultdict(dict)  # process -> key -> next offset
    for i, op in enumerate(ops):
        op.index, op.time, op.client = i, i * 1_000_000, f"c{op.process + 1}"
        position = positions[op.process]
        if op.f == "assign" and op.type == "ok":
            seek = op.value["seek_to_beginning"]
            positions[op.process] = {k: 0 if seek else position.get(k, 0) for k in op.value["keys"]}
            op.value["start"] = dict(positions[op.process])
        elif op.f == "poll":
            op.value = {"offsets": dict(position), **op.value}
            if op.type == "invoke":
                continue
            msgs = op.value.get("msgs", op.value.get("uncounted_msgs", {}))
            for key, pairs in msgs.items():
                after = max((o for o, _ in pairs), default=-1) + 1
                position[key] = max(position.get(key, after), after)
            if commit := {key: max(o for o, _ in pairs) for key, pairs in msgs.items() if pairs}:
                op.value["commit"] = commit
    return ops


#: Successful assign/poll/send ops, so that the stats rule holds in every history below.
BASELINE = [assign(9, ["9"], {}), send(9, "9", 1, 0), poll(9, {"9": [[0, 1]]})]


def with_baseline(*parts: list[Op]) -> list[Op]:
    return history(*BASELINE, *parts)


def sends(key: str, count: int) -> list[Op]:
    """`count` acknowledged sends of values 1, 2, ... at offsets 0, 1, ... (process 0)."""
    return [op for value in range(1, count + 1) for op in send(0, key, value, value - 1)]


def failed_commit() -> list[list[Op]]:
    """A client polls offset 0, then 1 (but that poll's commit fails), then 2."""
    return [sends("1", 3), assign(1, ["1"], {}), poll(1, {"1": [[0, 1]]}),
            poll(1, {"1": [[1, 2]]}, type="fail"), poll(1, {"1": [[2, 3]]})]


# --- histories that must be flagged ---------------------------------------------------------

FLAGGED = {
    "inconsistent-offsets": (
        with_baseline(send(0, "1", 1, 0), send(1, "1", 2, 0), assign(2, ["1"], {}), poll(2, {"1": [[0, 1]]})),
        "inconsistent-offsets", "1", {"offset": 0, "values": [1, 2]},
    ),
    "duplicate": (
        with_baseline(send(0, "1", 1, 0), assign(1, ["1"], {}), poll(1, {"1": [[0, 1], [1, 1]]})),
        "duplicate", "1", {"value": 1, "offsets": [0, 1], "count": 2},
    ),
    "lost-write": (
        with_baseline(sends("1", 3), assign(1, ["1"], {"1": 2}), poll(1, {"1": [[2, 3]]})),
        "lost-write", "1", {"value": 1, "offset": 0, "index": 0, "max-read-index": 2},
    ),
    "unseen": (
        with_baseline(send(0, "1", 1, 0), send(0, "1", 2, 1), poll(1, {})),
        "unseen", "1", {"count": 2, "values": [1, 2], "offsets": [0, 1]},
    ),
    "nonmonotonic-send": (
        with_baseline(send(0, "1", 1, 5), send(0, "1", 2, 3), assign(1, ["1"], {}), poll(1, {"1": [[3, 2], [5, 1]]})),
        "nonmonotonic-send", "1", {"offsets": [5, 3], "values": [1, 2], "delta": -1},
    ),
    "poll-skip": (
        with_baseline(sends("1", 3), assign(1, ["1"], {}), poll(1, {"1": [[0, 1]]}), poll(1, {"1": [[2, 3]]}),
                      assign(2, ["1"], {}), poll(2, {"1": [[0, 1], [1, 2], [2, 3]]})),
        "poll-skip", "1", {"offsets": [0, 2], "skipped": [2], "delta": 2},
    ),
    "poll-skip after a poll whose commit failed": (
        # Maelstrom's client has moved past what the failed poll read, and Jepsen judges the
        # next poll against the last acknowledged one: a correct node is flagged.
        with_baseline(*failed_commit()),
        "poll-skip", "1", {"offsets": [0, 2], "skipped": [2]},
    ),
    "nonmonotonic-poll": (
        with_baseline(sends("1", 2), assign(1, ["1"], {}), poll(1, {"1": [[0, 1], [1, 2]]}),
                      poll(1, {"1": [[1, 2]]}, asked={"1": 1})),
        "nonmonotonic-poll", "1", {"offsets": [1, 1], "values": [2, 2], "delta": 0},
    ),
    "nonmonotonic-poll after a seek to the beginning by the same client": (
        # Jepsen keeps the memory of a key an assign keeps, seek or not; Maelstrom's final
        # polls seek with a fresh client, so they never meet this.
        with_baseline(sends("1", 2), assign(1, ["1"], {}), poll(1, {"1": [[0, 1], [1, 2]]}),
                      assign(1, ["1"]), poll(1, {"1": [[0, 1], [1, 2]]})),
        "nonmonotonic-poll", "1", {"offsets": [1, 0], "values": [2, 1], "delta": -1},
    ),
    "nonmonotonic-poll after a failed assign": (
        with_baseline(sends("1", 2), assign(1, ["1"], {}), poll(1, {"1": [[0, 1], [1, 2]]}),
                      assign(1, ["2"], {}, type="fail"), poll(1, {"1": [[0, 1]]}, asked={"1": 0})),
        "nonmonotonic-poll", "1", {"offsets": [1, 0]},
    ),
    "int-poll-skip": (
        with_baseline(sends("1", 3), assign(1, ["1"], {}), poll(1, {"1": [[0, 1], [2, 3]]}),
                      assign(2, ["1"], {"1": 1}), poll(2, {"1": [[1, 2]]})),
        "int-poll-skip", "1", {"offsets": [0, 2], "skipped": [2], "values": [1, 3]},
    ),
    "int-nonmonotonic-poll": (
        with_baseline(sends("1", 2), assign(1, ["1"], {"1": 1}), poll(1, {"1": [[1, 2], [0, 1]]})),
        "int-nonmonotonic-poll", "1", {"offsets": [1, 0], "values": [2, 1], "delta": -1},
    ),
    "G1a": (
        with_baseline(send(0, "1", 1, None, type="fail"), assign(1, ["1"], {}), poll(1, {"1": [[0, 1]]})),
        "G1a", "1", {"value": 1, "offset": 0},
    ),
    "G1c-realtime": (
        # A poll read a message whose send began only after the poll had completed (a node
        # serving an old log, where the next value of a key is predictable).
        with_baseline(assign(1, ["1"], {}), poll(1, {"1": [[0, 1]]}), send(0, "1", 1, 0), poll(1, {})),
        "G1c-realtime", "1", {"value": 1},
    ),
    "strong-PL-2-cycle-exists": (
        # Elle reports the same cycle again for the strongest model its union graph breaks.
        with_baseline(assign(1, ["1"], {}), poll(1, {"1": [[0, 1]]}), send(0, "1", 1, 0), poll(1, {})),
        "strong-PL-2-cycle-exists", "1", {"value": 1, "model": "strong-PL-2"},
    ),
    "empty-transaction-graph": (
        history(assign(0, ["1"], {})),
        "empty-transaction-graph", None, {},
    ),
    "stats": (
        history(send(0, "1", 1, 0), assign(0, ["1"], {}, type="fail"), poll(0, {"1": [[0, 1]]}, asked={"1": 0})),
        "stats", None, {"f": "assign", "ok": 0, "fail": 1},
    ),
    "asked-offset-skip": (
        # Maelstrom does not judge a client's first poll of a key after an assign; another
        # client reads the skipped messages, so nothing is lost either.
        with_baseline(sends("1", 4), assign(1, ["1"], {}), poll(1, {"1": [[3, 4]]}),
                      assign(2, ["1"]), poll(2, {"1": [[0, 1], [1, 2], [2, 3], [3, 4]]})),
        "asked-offset-skip", "1", {"asked": 0, "offset": 3,
                                   "skipped": [{"offset": o, "values": [o + 1]} for o in range(3)]},
    ),
    "asked-offset-nonmonotonic": (
        # After a poll whose commit failed, the client asks from past it; a reply from before
        # that is behind what was asked, yet right after the last acknowledged read.
        with_baseline(sends("1", 3), assign(1, ["1"], {}), poll(1, {"1": [[0, 1]]}),
                      poll(1, {"1": [[1, 2]]}, type="fail"), poll(1, {"1": [[1, 2], [2, 3]]})),
        "asked-offset-nonmonotonic", "1", {"asked": 2, "offset": 1, "value": 2},
    ),
    "unasked-key": (
        with_baseline(send(0, "1", 1, 0), send(0, "2", 1, 0), assign(1, ["1"], {}),
                      poll(1, {"1": [[0, 1]], "2": [[0, 1]]})),
        "unasked-key", "2", {"offsets": [0], "asked_keys": 1},
    ),
}
