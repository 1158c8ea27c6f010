"""Failover after each kill, judged from a run's history alone (whatever the node's design): how
long the keys written just before a kill waited, from its completion, for a send to succeed again."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka_node.maelstrom.figures import quantile

#: The keys a kill is judged by: those with a send invoked this long before the kill completed.
BEFORE_KILL = 1.0


@dataclass
class Send:
    key: str
    invoked: float  # seconds since the history began
    ok_at: float | None = None  # when it completed ok; None if it failed, was indeterminate or never completed


def read_history(path: Path) -> list[dict[str, Any]]:
    """The operations of a history.jsonl, a line each; a line that is not JSON (blank, or the
    last of a run cut short) is left out."""
    ops = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            ops.append(json.loads(line))
        except ValueError:
            continue
    return ops


def sends_and_kills(ops: Iterable[dict[str, Any]]) -> tuple[dict[str, list[Send]], list[float]]:
    """The clients' sends by key, in order of invocation, and the completion times of the kills
    (process "nemesis", f "kill", the completion being the op whose value is a dict of nodes)."""
    by_key: dict[str, list[Send]] = defaultdict(list)
    pending: dict[Any, Send] = {}  # process -> its send in flight
    kills: list[float] = []
    for op in ops:
        at = op["time"] / 1e9
        if op.get("process") == "nemesis":
            value = op.get("value")
            if op.get("f") == "kill" and isinstance(value, dict) and any(
                    str(done).startswith("killed") for done in value.values()):  # a kill that killed a node
                kills.append(at)
            continue
        if op.get("f") != "send":
            continue
        if op.get("type") == "invoke":
            send = Send(str(op["value"]["key"]), at)
            by_key[send.key].append(send)
            pending[op["process"]] = send
        elif (done := pending.pop(op["process"], None)) is not None and op.get("type") == "ok":
            done.ok_at = at
    return by_key, kills


def failovers(ops: Iterable[dict[str, Any]], main_end: float | None) -> list[float]:
    """Seconds, one per kill (of at least one node) that has a key to judge. For each key with a send invoked in the
    BEFORE_KILL seconds before the kill completed: from the kill's completion until the first
    ok completion of a send to that key invoked after it; a key sent to again but never ok
    counts until `main_end` (the end of the main phase), a key never sent to again is skipped.
    A kill's failover is the longest of its keys'."""
    by_key, kills = sends_and_kills(ops)
    if main_end is None:  # a run cut short: its last send stands for the end of the main phase
        main_end = max((s.invoked if s.ok_at is None else s.ok_at for sends in by_key.values() for s in sends), default=0.0)
    found = []
    for killed in kills:
        waits = []
        for sends in by_key.values():
            if not any(killed - BEFORE_KILL <= s.invoked < killed for s in sends):
                continue
            after = [s for s in sends if s.invoked >= killed]
            if not after:
                continue
            oks = [s.ok_at for s in after if s.ok_at is not None]
            waits.append(max(0.0, (min(oks) if oks else main_end) - killed))
        if waits:
            found.append(max(waits))
    return found


def of_run(run_dir: Path | None, results: dict[str, Any]) -> dict[str, Any]:
    """A run's failovers in milliseconds (`failover_ms`, one per kill judged) and their p50 and
    p99 (None without any, or without a history)."""
    history = run_dir / "history.jsonl" if run_dir is not None else None
    if history is None or not history.is_file():
        return {"failover_ms": [], "failover_p50_ms": None, "failover_p99_ms": None}
    ops = read_history(history)
    run = results.get("run")
    phases = run.get("phases") if isinstance(run, dict) else None
    main_end = phases.get("recovery") if isinstance(phases, dict) else None
    found = [round(seconds * 1000, 1) for seconds in failovers(ops, main_end)]
    return {"failover_ms": found, "failover_p50_ms": quantile(found, 0.5), "failover_p99_ms": quantile(found, 0.99)}
