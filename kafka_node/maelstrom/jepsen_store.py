"""A run's history and results as Jepsen's store writes them: history.edn (an op map per line,
:index :time :type :process :f :value first), history.txt (tab-separated) and results.edn."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import edn_format
from edn_format import Keyword

from kafka_node.maelstrom.history import OK, Op

#: Our op's value fields that Jepsen's kafka op does not hold; written as extra keys of the op
#: map (Jepsen keeps any extra key of an op), so that `check` reads back all it judged.
EXTRA_FIELDS = ("offsets", "commit", "committed", "start", "uncounted_msgs")


def keyword(name: str) -> Keyword:
    return Keyword(name.replace("_", "-"))


def jepsen_value(op: Op) -> Any:
    """The :value of a kafka op as Maelstrom records it: [[:send k v]] (completed: [[:send k
    [offset v]]]), [[:poll]] (completed ok: [[:poll {k [[offset v] ...]}]]), an assign's keys."""
    value = op.value if isinstance(op.value, dict) else {}
    if type(op.process) is not int:
        return _nemesis_value(op.value)
    if op.f == "send":
        sent = [value["offset"], value["msg"]] if op.type == OK and "offset" in value else value.get("msg")
        return [[Keyword("send"), value.get("key"), sent]]
    if op.f == "poll":
        if op.type == OK and "msgs" in value:
            return [[Keyword("poll"), {key: [list(pair) for pair in pairs] for key, pairs in value["msgs"].items()}]]
        return [[Keyword("poll")]]  # Maelstrom records no reads for a poll that did not complete ok
    if op.f == "assign":
        return list(value.get("keys", []))
    return None


def _nemesis_value(value: Any) -> Any:
    """A nemesis value: names become keywords ("majority" -> :majority, ["isolated", grudge] ->
    [:isolated {"n1" #{"n2"}}]), the senders a node drops become a set, as Jepsen prints them."""
    if isinstance(value, str):
        return Keyword(value)
    if isinstance(value, list) and len(value) == 2 and value[0] == "isolated":
        return [Keyword("isolated"), {node: frozenset(senders) for node, senders in value[1].items()}]
    if isinstance(value, dict):
        return {node: Keyword(what) for node, what in value.items()}
    return value


def op_map(op: Op) -> dict[Keyword, Any]:
    """One op as Jepsen prints it: the record's fields in order, then the extra keys."""
    record: dict[Keyword, Any] = {
        Keyword("index"): op.index, Keyword("time"): op.time, Keyword("type"): Keyword(op.type),
        Keyword("process"): op.process if type(op.process) is int else Keyword(str(op.process)),
        Keyword("f"): Keyword(op.f), Keyword("value"): jepsen_value(op)}
    value = op.value if isinstance(op.value, dict) else {}
    if op.f == "assign" and value.get("seek_to_beginning"):
        record[Keyword("seek-to-beginning?")] = True
    if op.error:
        record[Keyword("error")] = op.error
    for name in EXTRA_FIELDS:
        if name in value:
            record[keyword(name)] = value[name]
    if op.client:
        record[Keyword("client")] = op.client
    if op.node:
        record[Keyword("node")] = op.node
    return record


def write_history_edn(ops: Sequence[Op], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for op in ops:
            out.write(edn_format.dumps(op_map(op)))
            out.write("\n")


def _pr(value: Any) -> str:
    return edn_format.dumps(value)


def write_history_txt(ops: Sequence[Op], path: Path) -> None:
    """Jepsen's condensed history: process, type, f, value and the error, tab-separated."""
    with open(path, "w", encoding="utf-8") as out:
        for op in ops:
            process = op.process if type(op.process) is int else Keyword(str(op.process))
            columns = [_pr(process), _pr(Keyword(op.type)), _pr(Keyword(op.f)), _pr(jepsen_value(op))]
            if op.error:
                columns.append(" ".join(op.error.split()))  # the node's words, kept on their row
            out.write("\t".join(columns) + "\n")


def edn_data(data: Any) -> Any:
    """results.json's data for results.edn: map keys as keywords (valid -> :valid?, whose
    "unknown" is :unknown; a grudge's node ids stay strings, as Jepsen's), lists as vectors."""
    if isinstance(data, Mapping):
        return {_result_key(key): Keyword("unknown") if key == "valid" and value == "unknown" else
                {node: edn_data(senders) for node, senders in value.items()} if key == "grudge" else edn_data(value)
                for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [edn_data(value) for value in data]
    return data


def _result_key(key: Any) -> Any:
    if not isinstance(key, str):
        return key
    if key == "valid":
        return Keyword("valid?")
    if key and all(c.isalnum() or c in "_-?" for c in key) and not key[0].isdigit():
        return keyword(key)
    return key


def write_results_edn(data: Mapping[str, Any], path: Path) -> None:
    """results.json's data, its :valid? first and three-valued as Jepsen's (true, false or
    :unknown: the `validity` of both verdicts)."""
    shown = {"valid": data.get("validity", data.get("valid"))}
    shown |= {key: value for key, value in data.items() if key not in ("valid", "validity")}
    path.write_text(edn_format.dumps(edn_data(shown), indent=1) + "\n", encoding="utf-8")
