"""Reads the history.edn that Maelstrom (Jepsen's store) writes for a kafka test, or this
runner writes, into this project's operations: one operation per line, each an EDN map or a
#jepsen.history.Op{...} record, or one vector holding them all."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import edn_format
from edn_format import ImmutableList, Keyword, Symbol

from kafka_node.maelstrom.history import HistoryError, Op
from kafka_node.maelstrom.jepsen_store import EXTRA_FIELDS

#: Tags whose element is read as it is: Jepsen's op record, and what Clojure prints for
#: objects and exceptions that may appear inside an :exception.
PLAIN_TAGS = ("jepsen.history.Op", "object", "error")
for _tag in PLAIN_TAGS:
    edn_format.add_tag(_tag, lambda element: element)

_TYPES = {"invoke", "ok", "fail", "info"}
#: What EDN vectors and lists are read as.
VECTORS = (list, tuple, ImmutableList)


def read_edn(path: Path) -> list[Op]:
    """The client operations of a Jepsen history.edn (nemesis operations are left out)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        values = edn_format.loads_all(text)
    except (edn_format.EDNDecodeError, NotImplementedError, ValueError) as error:
        line = _first_unreadable_line(text)
        raise HistoryError(path, line, f"not EDN: {error}") from None
    lines = [n for n, content in enumerate(text.splitlines(), 1) if content.strip()]
    if len(values) == 1 and isinstance(values[0], VECTORS):
        values, lines = list(values[0]), []  # one vector of operations: no line per op
    ops = []
    for position, value in enumerate(values):
        line = lines[position] if len(lines) == len(values) else None
        try:
            op = op_of(value)
        except ValueError as error:
            where = "" if line else f"operation #{position}: "
            raise HistoryError(path, line, f"{where}{error}") from None
        if op is not None:
            ops.append(op)
    return ops


def _first_unreadable_line(text: str) -> int | None:
    """The first line that is not EDN on its own, for histories of one operation per line."""
    rows = text.splitlines()
    for n, row in enumerate(rows, 1):
        content = row.strip()
        if n == 1:
            content = content.removeprefix("[")
        if n == len(rows):
            content = content.removesuffix("]")
        if not content:
            continue
        try:
            edn_format.loads(content)
        except (edn_format.EDNDecodeError, NotImplementedError, ValueError):
            return n
    return None


def _name(value: Any) -> Any:
    return value.name if isinstance(value, (Keyword, Symbol)) else value


def op_of(record: Any) -> Op | None:
    """One Jepsen operation as our Op; None for a nemesis operation. ValueError if it is not
    a single-operation kafka op (a transaction of several micro-operations, say)."""
    if not isinstance(record, Mapping):
        raise ValueError(f"expected an operation map, got {_brief(record)}")
    fields = {_name(k): v for k, v in record.items()}
    process = fields.get("process")
    if type(process) is not int:
        return None  # :nemesis, or none: not a client operation
    kind, f = _name(fields.get("type")), _name(fields.get("f"))
    if kind not in _TYPES or not isinstance(f, str):
        raise ValueError(f"an operation needs :type (one of {sorted(_TYPES)}) and :f, got {_brief(record)}")
    value = _value(f, fields)
    extras = {name: plain(fields[name.replace("_", "-")]) for name in EXTRA_FIELDS if name.replace("_", "-") in fields}
    if extras:  # what this runner adds to each op of the history.edn it writes
        value = {**(value if isinstance(value, dict) else {}), **extras}
    return Op(index=_int(fields.get("index"), -1), time=_int(fields.get("time"), 0), process=process,
              client=_text(fields.get("client")), node=_text(fields.get("node")),
              type=kind, f=f, value=value, error=_error(fields.get("error")))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any, default: int) -> int:
    return value if type(value) is int else default


def _value(f: str, fields: dict[str, Any]) -> Any:
    value = fields.get("value")
    if f in ("assign", "subscribe"):
        return {"keys": [_key(k) for k in value or []],
                "seek_to_beginning": fields.get("seek-to-beginning?") is True}
    if f == "txn":
        raise ValueError("a :txn operation: transactions are not part of Maelstrom's kafka workload")
    if f not in ("send", "poll"):
        return plain(value)
    mops = list(value or [])
    if len(mops) != 1:
        raise ValueError(f"{f} with {len(mops)} micro-operations: only single-operation histories "
                         "(as Maelstrom's kafka workload writes them) can be checked")
    mop = list(mops[0])
    name = _name(mop[0]) if mop else None
    if name == "send" and len(mop) == 3:
        sent = mop[2]
        if isinstance(sent, VECTORS) and len(sent) == 2:  # [offset value], as Jepsen reads it
            offset, msg = sent
            result = {"key": _key(mop[1]), "msg": plain(msg)}
            if type(offset) is int:
                result["offset"] = offset
            return result
        return {"key": _key(mop[1]), "msg": plain(sent)}
    if name == "poll" and len(mop) in (1, 2):
        if len(mop) == 1 or mop[1] is None:
            return {}
        return {"msgs": {_key(k): [[o if type(o) is int else None, plain(m)] for o, m in pairs or []]
                         for k, pairs in mop[1].items()}}
    raise ValueError(f"unsupported micro-operation {_brief(mops[0])}")


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if type(key) is int:
        return str(key)
    raise ValueError(f"a key must be a string or an integer, got {_brief(key)}")


def plain(value: Any) -> Any:
    """An EDN value as JSON data: vectors and lists as lists, maps with text keys, keywords as
    ":name" strings, sets as sorted lists."""
    if isinstance(value, Keyword):
        return f":{value.name}"
    if isinstance(value, Symbol):
        return value.name
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else str(plain(k)): plain(v) for k, v in value.items()}
    if isinstance(value, (frozenset, set)):
        return sorted((plain(v) for v in value), key=repr)
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        return [plain(v) for v in value]
    return value


def _error(error: Any) -> str | None:
    if error is None:
        return None
    parts = plain(error)
    if isinstance(parts, list):
        return ": ".join(str(p).lstrip(":") for p in parts)
    return str(parts).lstrip(":")


def _brief(value: Any) -> str:
    text = repr(plain(value))
    return text if len(text) <= 120 else text[:120] + "..."
