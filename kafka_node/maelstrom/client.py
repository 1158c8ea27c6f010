"""One Maelstrom kafka client (c1, c2, ...): its assigned keys and next poll offsets, and the
RPCs behind each operation (send; poll then commit_offsets; assign via list_committed_offsets)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from kafka_node.clientkit.wire import CommitOffsetsOk, ListCommittedOffsetsOk, PolledMessages, PollOk, SendOk
from kafka_node.maelstrom.history import FAIL, INFO, OK
from kafka_node.maelstrom.network import Network, NodeLost, RpcTimeout

#: Maelstrom's error codes; a definite one promises the request had no effect.
ERROR_NAMES = {
    0: "timeout", 1: "node-not-found", 10: "not-supported", 11: "temporarily-unavailable",
    12: "malformed-request", 13: "crash", 14: "abort", 20: "key-does-not-exist",
    21: "key-already-exists", 22: "precondition-failed", 30: "txn-conflict",
}
DEFINITE_CODES = frozenset({1, 10, 11, 12, 14, 20, 21, 22, 30})


class RpcError(Exception):
    """The node answered with an error body. Maelstrom does not check an error body's shape:
    its code decides, and a missing or unknown one is indefinite."""

    def __init__(self, code: Any, text: Any) -> None:
        name = ERROR_NAMES.get(code, "unknown code") if type(code) is int else "no integer code"
        super().__init__(f"error {code} ({name}): {text}")
        self.code = code

    @property
    def definite(self) -> bool:
        """Unknown codes are treated as indefinite: the request may have taken effect."""
        return type(self.code) is int and self.code in DEFINITE_CODES


class MalformedReply(Exception):
    """A reply whose type or fields do not match the request (Maelstrom's schema check: an
    exception in its client, so the op is info)."""


ReplyType = TypeVar("ReplyType")


class Latencies:
    """Round-trip times of answered RPCs, per request type: (start s, latency s)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.by_rpc: dict[str, list[tuple[float, float]]] = defaultdict(list)

    def record(self, rpc: str, start: float, latency: float) -> None:
        self.by_rpc[rpc].append((start, latency))


class Client:
    """A consumer and producer at once, as Maelstrom's kafka client is."""

    def __init__(self, name: str, node: str, net: Network, latencies: Latencies) -> None:
        self.name = name
        self.node = node  # the node this client talks to, as Jepsen binds a client to one
        self.net = net
        self.latencies = latencies
        self.offsets: dict[str, int] = {}  # assigned key -> next offset to poll

    async def _rpc(self, body: dict[str, Any], expected: str, reply_type: type[ReplyType]) -> ReplyType:
        start, began = self.latencies.clock(), time.perf_counter()
        head, raw = await self.net.call(self.name, self.node, body)
        self.latencies.record(body["type"], start, time.perf_counter() - began)
        if head.type == "error":
            error = msgspec.json.decode(raw)
            raise RpcError(error.get("code"), error.get("text"))
        if head.type != expected:
            raise MalformedReply(f"expected {expected}, got {head.type}")
        try:
            return msgspec.json.decode(raw, type=reply_type)
        except msgspec.DecodeError as bad:
            raise MalformedReply(f"{expected}: {bad}") from None

    async def send(self, key: str, msg: Any) -> int:
        reply = await self._rpc({"type": "send", "key": key, "msg": msg}, "send_ok", SendOk)
        return reply.offset

    async def poll(self) -> dict[str, list[tuple[int, Any]]]:
        """Poll exactly the client's offsets, then move each key the reply names to its highest
        offset + 1 (0 for an empty list), never backwards; as Maelstrom's client does, a key
        the poll did not ask for is taken into the offsets too."""
        reply = await self._rpc({"type": "poll", "offsets": dict(self.offsets)}, "poll_ok", PollOk[PolledMessages])
        msgs = {key: pairs or [] for key, pairs in reply.msgs.items()}
        for key, pairs in msgs.items():
            after = max([-1, *(offset for offset, _ in pairs)]) + 1  # at least 0, as Maelstrom's
            self.offsets[key] = max(self.offsets.get(key, after), after)
        return msgs

    async def commit(self, offsets: dict[str, int]) -> None:
        await self._rpc({"type": "commit_offsets", "offsets": offsets}, "commit_offsets_ok", CommitOffsetsOk)

    async def assign(self, keys: list[str], seek_to_beginning: bool) -> dict[str, int] | None:
        """Replace the assignment with `keys`. Seeking to the beginning sets each to 0 without
        asking the node; otherwise the client lists the committed offsets, then a key it
        already holds keeps its offset and a new one starts at 0. Maelstrom's client means to
        start a new key at its committed offset, but looks the (string) key up in the reply's
        body, whose keys are keywords, so it never finds one; so does this client. Returns
        the listed offsets."""
        if seek_to_beginning:
            self.offsets = dict.fromkeys(keys, 0)
            return None
        reply = await self._rpc({"type": "list_committed_offsets", "keys": keys},
                                "list_committed_offsets_ok", ListCommittedOffsetsOk)
        self.offsets = {key: self.offsets.get(key, 0) for key in keys}
        return reply.offsets


def invocation_value(client: Client, f: str, value: Any) -> Any:
    """What the history records at invocation; a poll records the offsets it will ask for."""
    return {"offsets": dict(client.offsets)} if f == "poll" else value


def highest_offsets(msgs: dict[str, list[tuple[int, Any]]]) -> dict[str, int]:
    """What a poll commits: the highest offset read of each key it read anything of, at
    least 0 (Maelstrom's txn-offsets starts each key at 0)."""
    return {key: max([0, *(offset for offset, _ in pairs)]) for key, pairs in msgs.items() if pairs}


async def perform(client: Client, f: str, value: Any) -> tuple[str, Any, str | None]:
    """Run one operation, as Maelstrom's kafka client does; its completion type, value and
    error.

    A send or poll that times out, loses the node, or gets an indefinite error is
    indeterminate (info: the caller replaces the client); a definite error fails it. An assign
    is idempotent, so any error or timeout fails it and leaves the client as it was. A reply
    that does not match the request's schema is an exception in Maelstrom's client: info, for
    any operation. A poll's commit is part of the operation: if the commit fails, the poll
    completes as fail or info with its invocation's value, no reads recorded (the messages
    read are kept aside under `uncounted_msgs`), though the client has already moved past them.
    """
    result: dict[str, Any] = dict(value) if isinstance(value, dict) else {}
    try:
        if f == "send":
            result["offset"] = await client.send(value["key"], value["msg"])
        elif f == "poll":
            msgs = await client.poll()
            if commit := highest_offsets(msgs):
                result["commit"] = commit
                try:
                    await client.commit(commit)
                except (RpcError, RpcTimeout, NodeLost, MalformedReply):
                    result["uncounted_msgs"] = msgs
                    raise
            result["msgs"] = msgs
        elif f == "assign":
            committed = await client.assign(value["keys"], value["seek_to_beginning"])
            if committed is not None:
                result["committed"] = committed
            result["start"] = dict(client.offsets)
        elif f == "crash":
            return INFO, None, "client crashed on purpose and was replaced"
        else:
            raise ValueError(f"unknown operation {f!r}")
        return OK, result, None
    except RpcError as error:
        return (FAIL if error.definite or f == "assign" else INFO), result, str(error)
    except RpcTimeout as error:
        return (FAIL if f == "assign" else INFO), result, f"timeout: {error}"
    except NodeLost as error:
        return (FAIL if f == "assign" else INFO), result, f"node lost: {error}"
    except MalformedReply as error:
        return INFO, result, f"malformed reply: {error}"
