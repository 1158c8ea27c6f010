"""messages.svg, Maelstrom's Lamport diagram of a run (maelstrom.net.viz): a line per client,
node and service, each message an arrow from its send to its receipt, its body on hover."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path

import msgspec

from kafka_node.maelstrom.journal import UNDRAWN_TYPES, Message

#: Sends and receipts drawn at most, as Maelstrom's journal-limit; later ones are left out,
#: and the picture says so.
EVENT_LIMIT = 10000
WIDTH = 1200
STEP = 20  # pixels per event: time flows down, one event per row, as in Maelstrom
LABEL_EVERY = 50  # rows between two repeats of the participants' names
LABEL_CHARS = 48
#: Maelstrom's colours: an error reply, a message to or from a client, any other.
ERROR_COLOR, CLIENT_COLOR, SERVER_COLOR = "#FF1E90", "#81BFFC", "#000"
TRUNCATED_COLOR = "#D96918"
DROPPED_COLOR = "#E0301E"


#: Characters XML forbids (a node's output may hold them): drawn as U+FFFD.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_text(text: str) -> str:
    """`text` escaped for an SVG or HTML document, with what XML forbids replaced."""
    return html.escape(NOT_XML.sub("\ufffd", text))


def participant_order(name: str) -> tuple:
    """Maelstrom's order: clients (c1, c2, ...), then nodes (n0, n1, ...), then services."""
    if (match := re.fullmatch(r"([cn])(\d+)", name)) is not None:
        return (0, match.group(1), int(match.group(2)), "")
    return (1, "", 0, name)


def _color(message: Message) -> str:
    if message.type == "error":
        return ERROR_COLOR
    if message.src.startswith("c") or message.dest.startswith("c"):
        return CLIENT_COLOR
    return SERVER_COLOR


def _label(message: Message) -> str:
    """The type, then the rest of the body without the ids (an error: its text)."""
    try:
        body = msgspec.json.decode(message.body)
    except msgspec.DecodeError:
        body = None
    if isinstance(body, dict):
        if message.type == "error" and "text" in body:
            text = f"error {body.get('code')} {body['text']}"
        else:
            rest = {k: v for k, v in body.items() if k not in ("type", "msg_id", "in_reply_to")}
            text = f"{message.type} {msgspec.json.encode(rest).decode()}"
    else:
        text = f"{message.type} {message.body}"
    return text if len(text) <= LABEL_CHARS else text[:LABEL_CHARS - 1] + "…"


def events(messages: Sequence[Message], limit: int = EVENT_LIMIT) -> tuple[list[tuple[float, str, Message]], bool]:
    """Sends and receipts in time order (init and its reply left out, as Maelstrom does), at
    most `limit` of them; and whether any were left out."""
    shown = [m for m in messages if m.type not in UNDRAWN_TYPES]
    timeline: list[tuple[float, int, int, str, Message]] = []
    for m in shown:
        timeline.append((m.sent, 0, m.id, "send", m))
        if m.received is not None:
            timeline.append((m.received, 1, m.id, "recv", m))
    timeline.sort(key=lambda event: event[:3])
    return [(at, kind, m) for at, _, _, kind, m in timeline[:limit]], len(timeline) > limit


def render(messages: Sequence[Message], journal_truncated: bool, limit: int = EVENT_LIMIT) -> str:
    chosen, truncated = events(messages, limit)
    truncated = truncated or journal_truncated
    names = sorted({name for _, _, m in chosen for name in (m.src, m.dest)}, key=participant_order)
    x = {name: (i + 0.5) / max(1, len(names)) * WIDTH for i, name in enumerate(names)}
    rows = len(chosen)
    height = STEP * (rows + 4)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" font-family="Helvetica, Arial, sans-serif" font-size="11">',
           '<defs><marker id="ahead" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="context-stroke"/></marker>'
           '<filter id="glow"><feMorphology operator="dilate" radius="2" in="SourceAlpha" result="thick"/>'
           '<feFlood flood-color="#fff"/><feComposite in2="thick" operator="in"/><feMerge><feMergeNode/>'
           '<feMergeNode in="SourceGraphic"/></feMerge></filter></defs>',
           '<rect width="100%" height="100%" fill="#fff"/>']
    for name in names:
        out.append(f'<line x1="{x[name]:.1f}" y1="{STEP}" x2="{x[name]:.1f}" y2="{height}" stroke="#ccc" stroke-width="1"/>')
        for row in range(0, max(1, rows), LABEL_EVERY):
            fill = "#000" if row == 0 else "#aaa"
            out.append(f'<text x="{x[name]:.1f}" y="{STEP * (row + 1):.0f}" text-anchor="middle" fill="{fill}">'
                       f'{xml_text(name)}</text>')
    sent_row: dict[int, int] = {}
    for row, (_, kind, m) in enumerate(chosen):
        y = STEP * (1.5 + row)
        if kind == "send":
            sent_row[m.id] = row
            if m.dropped:
                out.append(_dropped(m, x[m.src], y))
            continue
        y0 = STEP * (1.5 + sent_row[m.id])
        color = _color(m)
        title = xml_text(f"{m.src} → {m.dest} {m.body}")
        x0, x1 = x[m.src], x[m.dest]
        out.append(f'<g><title>{title}</title>'
                   f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y:.1f}" stroke="{color}" '
                   f'stroke-width="2" marker-end="url(#ahead)"/>'
                   f'<text x="{(x0 + x1) / 2:.1f}" y="{(y0 + y) / 2 - 3:.1f}" text-anchor="middle" fill="{color}" '
                   f'filter="url(#glow)">{xml_text(_label(m))}</text></g>')
    if truncated:
        y = STEP * (2 + rows)
        out.append(f'<line x1="0" y1="{y}" x2="{WIDTH}" y2="{y}" stroke="{TRUNCATED_COLOR}" stroke-width="2"/>'
                   f'<text x="{WIDTH / 2}" y="{y + 14}" text-anchor="middle" fill="{TRUNCATED_COLOR}">'
                   f'Additional network events not shown</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _dropped(m: Message, x: float, y: float) -> str:
    """A message a partition dropped: a cross at its sender (Maelstrom leaves the row empty)."""
    title = xml_text(f"{m.src} → {m.dest} dropped by a partition: {m.body}")
    return (f'<g><title>{title}</title><path d="M {x - 5:.1f} {y - 5:.1f} l 10 10 m 0 -10 l -10 10" '
            f'stroke="{DROPPED_COLOR}" stroke-width="2"/></g>')


def write(messages: Sequence[Message], journal_truncated: bool, path: Path) -> None:
    path.write_text(render(messages, journal_truncated), encoding="utf-8")
