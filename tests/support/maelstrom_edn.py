"""For tests: a history of this runner written as Maelstrom's store writes history.edn, one
`#jepsen.history.Op{...}` record (or plain map) per line, or as one vector of operations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import edn_format
from edn_format import Keyword

from kafka_node.maelstrom.history import OK, Op


def _value(op: Op) -> Any:
    value = op.value if isinstance(op.value, dict) else {}
    if op.f == "send":
        sent = [value["offset"], value["msg"]] if op.type == OK else value["msg"]
        return [[Keyword("send"), value["key"], sent]]
    if op.f == "poll":
        if op.type == OK:
            return [[Keyword("poll"), {key: [list(pair) for pair in pairs] for key, pairs in value["msgs"].items()}]]
        return [[Keyword("poll")]]  # Maelstrom records no reads for a poll that did not complete ok
    if op.f == "assign":
        return list(value["keys"])
    return None


def op_map(op: Op) -> dict[Keyword, Any]:
    record = {Keyword("index"): op.index, Keyword("time"): op.time, Keyword("type"): Keyword(op.type),
              Keyword("process"): op.process, Keyword("f"): Keyword(op.f), Keyword("value"): _value(op)}
    if op.f == "assign" and isinstance(op.value, dict) and op.value.get("seek_to_beginning"):
        record[Keyword("seek-to-beginning?")] = True
    if op.error:
        record[Keyword("error")] = [Keyword("temporarily-unavailable"), op.error]
    return record


def write_edn(ops: list[Op], path: Path, shape: str = "records") -> None:
    """shape: "records" (#jepsen.history.Op{...} per line), "maps" (a map per line), or
    "vector" (one vector holding every op)."""
    maps = [op_map(op) for op in ops]
    if shape == "vector":
        path.write_text("[" + "\n ".join(edn_format.dumps(m) for m in maps) + "]\n")
        return
    prefix = "#jepsen.history.Op" if shape == "records" else ""
    path.write_text("".join(f"{prefix}{edn_format.dumps(m)}\n" for m in maps))
