"""What the load generator asks: the mix of request types, the keys they name and the message
they carry, as a deterministic stream of requests for a given seed."""

from __future__ import annotations

import random
from dataclasses import dataclass

import msgspec

from kafka_node.clientkit import wire

#: Names accepted in `--mix`, and the RPC each stands for.
MIX_NAMES = {
    "send": "send",
    "poll": "poll",
    "commit": "commit_offsets",
    "commit_offsets": "commit_offsets",
    "list": "list_committed_offsets",
    "list_committed_offsets": "list_committed_offsets",
}
#: Length of the precomputed cycles of request types and keys.
CYCLE = 1 << 16


def parse_mix(text: str) -> dict[str, float]:
    """`send=1,poll=0,commit=0` as weights by RPC name; at least one weight must be positive."""
    weights = dict.fromkeys(wire.RPCS, 0.0)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        rpc = MIX_NAMES.get(name.strip())
        if not sep or rpc is None:
            raise ValueError(f"mix entries are NAME=WEIGHT with NAME one of {', '.join(MIX_NAMES)}; got {part!r}")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"mix weight of {name} must be a number, got {value!r}") from None
        if not weight >= 0:
            raise ValueError(f"mix weight of {name} must be 0 or more, got {value!r}")
        weights[rpc] = weight
    if not any(weights.values()):
        raise ValueError(f"the mix {text!r} asks for nothing: give some request type a positive weight")
    return weights


def mix_text(weights: dict[str, float]) -> str:
    """The inverse of `parse_mix`, with short names."""
    short = {"commit_offsets": "commit", "list_committed_offsets": "list"}
    return ",".join(f"{short.get(rpc, rpc)}={weight:g}" for rpc, weight in weights.items() if weight)


def json_string_of(size: int) -> bytes:
    """A JSON string value whose text is `size` bytes of letters (quotes not counted)."""
    letters = b"abcdefghijklmnopqrstuvwxyz"
    return b'"' + (letters * (size // len(letters) + 1))[:size] + b'"'


@dataclass(frozen=True)
class Workload:
    """What to ask: request types by weight, keys "0".."keys-1" chosen uniformly."""

    mix: dict[str, float]
    keys: int = 100
    poll_keys: int = 1  # keys named by one poll (and one list_committed_offsets)
    poll_from: int = 0  # the offset every poll asks from
    msg_bytes: int = 8  # length of the JSON string sent as each message
    seed: int = 0


class RequestStream:
    """Numbered requests from one client, drawn from a workload.

    Each send's offset is remembered per key, and a commit_offsets commits the latest offset
    acknowledged for its key, as a consumer that keeps up would.
    """

    def __init__(self, workload: Workload, client: str = "c1", node: str = "n0") -> None:
        if workload.keys < 1 or workload.poll_keys < 1:
            raise ValueError("keys and poll_keys must be at least 1")
        self.client = client
        self.node = node
        self.latest_offsets: dict[str, int] = {}
        self._next_id = 1
        rng = random.Random(workload.seed)
        rpcs = [rpc for rpc, weight in workload.mix.items() if weight > 0]
        self._rpc_cycle = rng.choices(rpcs, [workload.mix[r] for r in rpcs], k=CYCLE)
        self._key_names = [str(i) for i in range(workload.keys)]
        self._key_cycle = [self._key_names[rng.randrange(workload.keys)] for _ in range(CYCLE)]
        self._position = 0
        self._poll_keys = min(workload.poll_keys, workload.keys)
        self._poll_from = workload.poll_from
        self._msg = msgspec.Raw(json_string_of(workload.msg_bytes))

    def next_id(self) -> int:
        msg_id = self._next_id
        self._next_id += 1
        return msg_id

    def init(self) -> wire.Request:
        return wire.Request(self.client, self.node, wire.Init(self.node, [self.node], self.next_id()))

    def take(self, count: int) -> list[tuple[wire.Request, str]]:
        """The next `count` requests, each with its RPC name."""
        taken = []
        for _ in range(count):
            i = self._position
            self._position = (i + 1) % CYCLE
            rpc = self._rpc_cycle[i]
            taken.append((wire.Request(self.client, self.node, self._body(rpc, self._key_cycle[i])), rpc))
        return taken

    def _body(self, rpc: str, key: str) -> wire.RequestBody:
        msg_id = self.next_id()
        if rpc == "send":
            return wire.Send(key, self._msg, msg_id)
        if rpc == "commit_offsets":
            return wire.CommitOffsets({key: self.latest_offsets.get(key, 0)}, msg_id)
        keys = self._keys_from(key)
        if rpc == "poll":
            return wire.Poll(dict.fromkeys(keys, self._poll_from), msg_id)
        return wire.ListCommittedOffsets(keys, msg_id)

    def _keys_from(self, key: str) -> list[str]:
        """`poll_keys` consecutive key names starting at `key`, wrapping around."""
        if self._poll_keys == 1:
            return [key]
        if self._poll_keys == len(self._key_names):
            return self._key_names
        first = int(key)
        names = self._key_names
        return [names[(first + i) % len(names)] for i in range(self._poll_keys)]
