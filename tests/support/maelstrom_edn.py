"""For tests: a history of this runner written as Maelstrom's own store writes history.edn:
the runner's op maps without the keys it adds, one `#jepsen.history.Op{...}` record (or plain
map) per line, or one vector holding them all."""

from __future__ import annotations

from pathlib import Path

import edn_format
from edn_format import Keyword

from kafka_node.maelstrom.history import Op
from kafka_node.maelstrom.jepsen_store import EXTRA_FIELDS, keyword, op_map

#: The keys this runner adds to Jepsen's op maps, which Maelstrom's history.edn lacks.
RUNNER_KEYS = {keyword(name) for name in EXTRA_FIELDS} | {Keyword("client"), Keyword("node")}


def maelstrom_op_map(op: Op) -> dict[Keyword, object]:
    return {key: value for key, value in op_map(op).items() if key not in RUNNER_KEYS}


def write_edn(ops: list[Op], path: Path, shape: str = "records") -> None:
    """shape: "records" (#jepsen.history.Op{...} per line), "maps" (a map per line), or
    "vector" (one vector holding every op)."""
    maps = [maelstrom_op_map(op) for op in ops]
    if shape == "vector":
        path.write_text("[" + "\n ".join(edn_format.dumps(m) for m in maps) + "]\n")
        return
    prefix = "#jepsen.history.Op" if shape == "records" else ""
    path.write_text("".join(f"{prefix}{edn_format.dumps(m)}\n" for m in maps))
