"""What one seed's run does: its network (latency with a long tail, drops, duplicates) and its faults
in time (one-way link cuts, isolations, nodes cut from lin-kv, lost, late and failed lin-kv replies, pauses,
kills, disk losses, two restarts in a row), all drawn from the seed."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

#: The longest a calm run stalls a node's loop: no leader and no in-sync set may change for it.
CALM_STALL = 0.3

#: Every kind of fault a schedule may hold.
KINDS = ("cut-link", "isolate", "kv-cut", "kv-lose", "kv-late", "kv-error", "pause", "kill", "wipe", "restart-twice")


@dataclass(frozen=True)
class Fault:
    """`kind` on `node` (and `other`, for a link) from `start` for `length` seconds."""

    kind: str
    start: float
    length: float
    node: str
    other: str = ""

    def __str__(self) -> str:
        target = f"{self.node}->{self.other}" if self.other else self.node
        return f"{self.start:7.3f}s {self.kind} {target} for {self.length:.3f}s"


@dataclass(frozen=True)
class Plan:
    """One run: its nodes, load, network and faults."""

    seed: int
    nodes: int
    load: float  # seconds of client load, during which the faults happen
    heal: float  # seconds after the load with no fault, for every partition to recover
    latency: float  # mean seconds of a message between servers
    tail: float  # the share of those messages delayed 10 to 300 times as long
    drop: float  # the share dropped
    duplicate: float  # the share delivered twice
    clients: int
    think: float  # mean seconds between a client's operations
    keys: int
    calm: bool = False
    faults: list[Fault] = field(default_factory=list)

    @property
    def node_ids(self) -> list[str]:
        return [f"n{i}" for i in range(self.nodes)]

    def describe(self) -> str:
        head = (f"seed {self.seed}{' (calm)' if self.calm else ''}: {self.nodes} nodes, {self.load:g} s of load then "
                f"{self.heal:g} s healed; latency "
                f"{self.latency * 1000:.1f} ms (tail {self.tail:.0%}), drop {self.drop:.1%}, duplicate {self.duplicate:.1%}; "
                f"{self.clients} clients on {self.keys} keys; {len(self.faults)} faults")
        return "\n".join([head, *(f"  {fault}" for fault in self.faults)])


def draw(seed: int, nodes: int | None = None, calm: bool = False) -> Plan:
    """The plan of seed `seed`: with `calm`, a network with latency only and no fault at all."""
    rng = random.Random(seed)
    count = nodes or rng.choice((3, 3, 5))
    load = 4.0
    plan = Plan(seed=seed, nodes=count, load=load, heal=6.0,
                latency=rng.uniform(0.0005, 0.005), tail=rng.choice((0.0, 0.01)) if calm else rng.choice((0.0, 0.01, 0.05)),
                drop=0.0 if calm else rng.choice((0.0, 0.0, 0.01, 0.03)),
                duplicate=0.0 if calm else rng.choice((0.0, 0.01)),
                clients=rng.choice((3, 4, 6)), think=rng.uniform(0.01, 0.05), keys=rng.choice((4, 8)), calm=calm)
    ids = plan.node_ids
    if calm:
        # No fault, but what a busy machine does: a node's loop stalled a while (serving a burst of
        # big polls, or not scheduled), then reading at once what came meanwhile
        for _ in range(rng.randint(0, 3)):
            plan.faults.append(Fault("stall", rng.uniform(0.3, load - 0.3), rng.uniform(0.02, CALM_STALL), rng.choice(ids)))
        plan.faults.sort(key=lambda fault: fault.start)
        return plan
    # one seed in four leans on one family of faults, so that rare combinations of them come often
    kinds = rng.choice((KINDS, KINDS, ("kv-cut", "kv-lose", "kv-late", "kv-error", "wipe", "kill"),
                        ("cut-link", "isolate", "pause", "wipe", "restart-twice")))
    if kinds is not KINDS:
        plan = dataclasses.replace(plan, tail=0.05, duplicate=0.02)
    for _ in range(rng.randint(1, 6 if kinds is KINDS else 10)):
        kind = rng.choice(kinds)
        start = rng.uniform(0.3, load - 0.2)
        length = rng.choice((rng.uniform(0.05, 0.5), rng.uniform(0.5, 2.0)))
        node = rng.choice(ids)
        other = rng.choice([n for n in ids if n != node]) if kind == "cut-link" else ""
        plan.faults.append(Fault(kind, start, min(length, load + 0.5 - start), node, other))
    plan.faults.sort(key=lambda fault: fault.start)
    return plan
