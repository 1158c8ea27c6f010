"""timeline.html, as Jepsen's timeline checker draws it: a column per process (the nemesis
first), a box per operation from its invocation down to its completion, coloured by outcome."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import edn_format
import msgspec

from kafka_node.maelstrom.history import INFO, INVOKE, Op
from kafka_node.maelstrom.jepsen_store import op_map
from kafka_node.maelstrom.messages_svg import xml_text
from kafka_node.maelstrom.plots import NEMESES, nemesis_periods

#: Operations (invocation and completion pairs) drawn at most, as Jepsen's op-limit.
OP_LIMIT = 10000
COLUMN, GUTTER, ROW = 100, 106, 16  # pixels: a column's width, the distance between two, a row
#: Jepsen's colours for an op's outcome.
STYLE = """
body { font-family: Helvetica, Arial, sans-serif; font-size: 11px; margin: 0 1em; }
h1 { font-size: 18px; }
.legend span { display: inline-block; padding: 2px 8px; margin-right: 6px; border-radius: 2px; }
.ops { position: relative; }
.op { position: absolute; padding: 2px; border-radius: 2px; box-shadow: 0 1px 3px rgba(0,0,0,0.12),
      0 1px 2px rgba(0,0,0,0.24); overflow: hidden; box-sizing: border-box; white-space: nowrap; }
.op.invoke { background: #eeeeee; }
.op.ok { background: #6DB6FE; }
.op.info { background: #FFAA26; }
.op.fail { background: #FEB5DA; }
.op:target { box-shadow: 0 14px 28px rgba(0,0,0,0.25), 0 10px 10px rgba(0,0,0,0.22); }
.period { position: absolute; left: 0; right: 0; opacity: 0.45; }
.head { position: absolute; font-weight: bold; }
.truncation-warning { font-weight: bold; color: #D96918; }
a { color: inherit; text-decoration: none; }
"""


def _column_order(process: int | str) -> tuple:
    """The nemesis' column first, then the clients' by number (Jepsen's polysort)."""
    return (0, 0, str(process)) if type(process) is not int else (1, process, "")


def _pr(op: Op) -> str:
    return edn_format.dumps(op_map(op))


def _value_text(op: Op) -> str:
    return msgspec.json.encode(op.value).decode() if op.value is not None else ""


def _text(invocation: Op | None, op: Op) -> str:
    """What the box says: process, f and the value asked (the nemesis' without its value,
    as Jepsen's), then the value at completion when it differs."""
    first = invocation or op
    if type(op.process) is not int:
        return xml_text(f"nemesis {op.f}")
    text = xml_text(f"{first.process} {first.f} {_value_text(first)}")
    if invocation is not None and op.value != invocation.value:
        text += "<br/>" + xml_text(_value_text(op))
    return text


def _title(invocation: Op | None, completion: Op) -> str:
    lines = []
    if invocation is not None:
        lines.append(f"Dur: {(completion.time - invocation.time) / 1e6:.3f} ms")
    if completion.error:
        lines.append(f"Err: {completion.error}")
    lines.append(f"Time: {completion.time / 1e9:.3f} s since the start")
    lines.append("Op:")
    lines.append(_pr(completion))
    return "\n".join(lines)


def boxes(ops: Sequence[Op], limit: int = OP_LIMIT) -> tuple[list[tuple[Op | None, Op, int, int]], int]:
    """Each pair (invocation, completion) with its first row and its height in rows; a
    nemesis op is a box of its own (Jepsen pairs none of them). At most `limit`; and how many
    there were."""
    rows = {id(op): row for row, op in enumerate(ops)}
    pending: dict[int | str, Op] = {}
    found: list[tuple[Op | None, Op, int, int]] = []
    total = len(ops) + 1
    for op in ops:
        if type(op.process) is not int:
            found.append((None, op, rows[id(op)], 1))
        elif op.type == INVOKE:
            pending[op.process] = op
        else:
            invocation = pending.pop(op.process, None)
            start = rows[id(invocation)] if invocation is not None else rows[id(op)]
            height = (total - start) if op.type == INFO else max(1, rows[id(op)] - start)
            found.append((invocation, op, start, height))
    found.extend((None, op, rows[id(op)], 1) for op in pending.values())  # never completed
    found.sort(key=lambda box: box[2])
    return found[:limit], len(found)


def render(ops: Sequence[Op], title: str = "kafka", limit: int = OP_LIMIT) -> str:
    shown, total = boxes(ops, limit)
    columns = {process: i for i, process in enumerate(sorted({op.process for op in ops}, key=_column_order))}
    out = ["<!DOCTYPE html>", '<html><head><meta charset="utf-8">', f"<title>{xml_text(title)} timeline</title>",
           f"<style>{STYLE}</style></head><body>", f"<h1>{xml_text(title)} timeline</h1>",
           '<p class="legend"><span class="op ok" style="position:static">ok</span>'
           '<span class="op info" style="position:static">info</span>'
           '<span class="op fail" style="position:static">fail</span>'
           '<span class="op invoke" style="position:static">not completed</span>'
           + "".join(f'<span style="background:{color}">{name}</span>' for name, _, _, color in NEMESES)
           + " Time flows down, one row per history event; hover over an operation to see it.</p>"]
    if total > len(shown):
        out.append(f'<div class="truncation-warning">Showing only {len(shown)} of {total} operations in this '
                   "history.</div>")
    out.append('<div class="ops">')
    for process, column in columns.items():
        out.append(f'<div class="head" style="left:{GUTTER * column}px;top:0px">{xml_text(str(process))}</div>')
    last_row = max((start + height for _, _, start, height in shown), default=0)
    for period in nemesis_periods(ops):
        last = period.last if period.last is not None else len(ops)
        if period.first <= last_row:
            out.append(f'<div class="period" style="top:{ROW * (period.first + 1)}px;'
                       f'height:{ROW * max(1, last - period.first)}px;background:{period.color}"></div>')
    for invocation, op, start, height in shown:
        out.append(f'<a href="#i{op.index}"><div class="op {op.type}" id="i{op.index}" '
                   f'style="width:{COLUMN}px;left:{GUTTER * columns[op.process]}px;top:{ROW * (start + 1)}px;'
                   f'height:{ROW * height}px" title="{xml_text(_title(invocation, op))}">'
                   f'{_text(invocation, op)}</div></a>')
    out.append(f'<div style="height:{ROW * (last_row + 2)}px"></div></div></body></html>')
    return "\n".join(out) + "\n"


def write(ops: Sequence[Op], path: Path, title: str = "kafka") -> None:
    path.write_text(render(ops, title), encoding="utf-8")
