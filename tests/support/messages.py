"""Requests as a client writes them: one JSON message per line."""

from __future__ import annotations

from typing import Any

import msgspec


def message(body: dict[str, Any], src: str = "c1", dest: str = "n0") -> bytes:
    """One message's JSON text, without its newline."""
    return msgspec.json.encode({"src": src, "dest": dest, "body": body})


def line(body: dict[str, Any], src: str = "c1", dest: str = "n0") -> bytes:
    """One message as a line of input."""
    return message(body, src, dest) + b"\n"


#: The init a single node n0 gets first.
INIT = line({"type": "init", "node_id": "n0", "node_ids": ["n0"], "msg_id": 0})


def reply_bodies(out: bytes) -> list[dict[str, Any]]:
    """The bodies of the messages in a node's output, in order."""
    return [msgspec.json.decode(raw)["body"] for raw in out.splitlines()]
