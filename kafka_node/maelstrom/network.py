"""Messages between the runner's clients and the node: requests encoded as Maelstrom sends
them, every stdout line validated, replies matched to requests by in_reply_to, RPC timeouts."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from typing import Any

import msgspec

from kafka_node.maelstrom.process import NodeProcess

NODE_ID = "n0"

#: Seconds a client waits for a reply before the operation is indeterminate (Maelstrom: 5 s).
RPC_TIMEOUT = 5.0


class InvalidOutput(Exception):
    """The node printed something on stdout that is not a Maelstrom message."""


class RpcTimeout(Exception):
    """No reply within the RPC timeout: the request may or may not have taken effect."""


class NodeLost(Exception):
    """The node died or was killed while (or before) a request was in flight."""


class Envelope(msgspec.Struct):
    src: str
    dest: str
    body: msgspec.Raw


class Head(msgspec.Struct):
    """The fields every body must have, and the one that routes a reply."""

    type: str
    in_reply_to: int | None = None


_envelope = msgspec.json.Decoder(Envelope)
_head = msgspec.json.Decoder(Head)
_encoder = msgspec.json.Encoder()


def parse_envelope(line: bytes) -> Envelope:
    """The envelope of one stdout line (its body still raw), or InvalidOutput."""
    if not line.endswith(b"\n"):
        raise InvalidOutput(f"an unterminated line at end of output: {_excerpt(line)!r}")
    try:
        return _envelope.decode(line)
    except msgspec.DecodeError as error:
        raise InvalidOutput(f"{error} in line {_excerpt(line)!r}") from None


def parse_head(envelope: Envelope, line: bytes) -> Head:
    """The type and in_reply_to of a reply's body, or InvalidOutput."""
    try:
        return _head.decode(envelope.body)
    except msgspec.DecodeError as error:
        raise InvalidOutput(f"{error} in line {_excerpt(line)!r}") from None


def _excerpt(line: bytes) -> str:
    return line[:300].decode("utf-8", "replace").rstrip("\n")


class Network:
    """Routes requests to the current node incarnation and replies back to their callers."""

    def __init__(self, timeout: float = RPC_TIMEOUT) -> None:
        self.timeout = timeout
        self.node: NodeProcess | None = None
        self.ready = asyncio.Event()  # cleared while the node starts or restarts
        self.gone: str | None = None  # why requests cannot be delivered any more
        self.counts: Counter[str] = Counter()
        self._pending: dict[tuple[str, int], asyncio.Future[tuple[Head, msgspec.Raw]]] = {}
        self._msg_ids: dict[str, itertools.count] = {}
        self._envelope_ids = itertools.count()

    def attach(self, node: NodeProcess) -> None:
        self.node, self.gone = node, None

    async def call(self, client: str, body: dict[str, Any], *, timeout: float | None = None,
                   wait_ready: bool = True) -> tuple[Head, msgspec.Raw]:
        """Send one request from `client` and return the reply's head and raw body."""
        if wait_ready:
            await self.ready.wait()
        if self.gone or self.node is None:
            raise NodeLost(self.gone or "no node")
        msg_id = next(self._msg_ids.setdefault(client, itertools.count(1)))
        message = {"id": next(self._envelope_ids), "src": client, "dest": NODE_ID, "body": {**body, "msg_id": msg_id}}
        future = asyncio.get_running_loop().create_future()
        self._pending[client, msg_id] = future
        limit = timeout or self.timeout
        try:
            if not self.node.write(_encoder.encode(message) + b"\n"):
                raise NodeLost(self.gone or "the node's stdin is closed")
            self.counts["sent"] += 1
            async with asyncio.timeout(limit):  # a node that stops reading its stdin counts too
                await self.node.drain()
                return await future
        except TimeoutError:
            raise RpcTimeout(f"no reply within {limit:g} s") from None
        finally:
            self._pending.pop((client, msg_id), None)

    def deliver(self, envelope: Envelope, head: Head) -> None:
        """Hand a reply to the request awaiting it; anything else is counted and dropped."""
        self.counts["received"] += 1
        future = self._pending.get((envelope.dest, head.in_reply_to)) if head.in_reply_to is not None else None
        if future is None or future.done():
            self.counts["unmatched"] += 1
            return
        future.set_result((head, envelope.body))

    def forget_client(self, client: str) -> None:
        self._msg_ids.pop(client, None)

    def lose_all(self, reason: str) -> None:
        """The node is gone: every request in flight is indeterminate, and so is every later
        one until a new incarnation is attached."""
        self.gone = reason
        for future in self._pending.values():
            if not future.done():
                future.set_exception(NodeLost(reason))
