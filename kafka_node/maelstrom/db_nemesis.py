"""Jepsen's db nemesis and db package (jepsen.nemesis.combined): nodes killed and started, paused
and resumed, picked by Jepsen's node specs, each step a pair of :info ops of the nemesis process."""

from __future__ import annotations

import argparse
import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kafka_node.maelstrom.history import History
from kafka_node.maelstrom.nodes import Nodes

#: The node specs Jepsen draws a kill's or a pause's targets from: combined/node-specs for a
#: database without primaries, as Maelstrom's is (None: a random non-empty subset).
NODE_SPECS: tuple[str | None, ...] = (None, "one", "minority-third", "minority", "majority", "all")
#: The faults of the db package, in the order db-generators lists its modes and final ops.
DB_FAULTS = ("pause", "kill")
#: What the db nemesis says it did to a node that the fault hit.
HIT = ("killed", "killed-files-lost", "paused")

NodeSpec = str | list[str] | None  # a spec of NODE_SPECS, or the nodes themselves


def targets_of(text: str) -> tuple[str | None, ...]:
    """--nemesis-targets: node specs separated by commas (`random` for Jepsen's nil spec)."""
    names = [name.strip() for name in text.split(",")]
    known = {spec or "random": spec for spec in NODE_SPECS}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown node spec {', '.join(map(repr, unknown))}: choose among "
                                         f"{', '.join(known)}, separated by commas")
    return tuple(known[name] for name in names)


def majority(n: int) -> int:
    """The smallest integer strictly greater than half (jepsen.util/majority)."""
    return n // 2 + 1


def minority_third(n: int) -> int:
    """The largest integer strictly less than a third (jepsen.util/minority-third): 0 for 3."""
    return (n - 1) // 3


def db_nodes(spec: NodeSpec, nodes: Sequence[str], rng: random.Random) -> list[str]:
    """The nodes a spec names, as combined/db-nodes picks them: a minority or a third may be
    none at all (one node's minority, three nodes' third)."""
    if isinstance(spec, list):
        return list(spec)
    if spec == "all":
        return list(nodes)
    if spec == "one":
        return [rng.choice(list(nodes))]
    if spec is None:  # jepsen.util/random-nonempty-subset
        count = rng.randrange(len(nodes)) + 1
    else:
        counts = {"minority": majority(len(nodes)) - 1, "majority": majority(len(nodes)),
                  "minority-third": minority_third(len(nodes))}
        if spec not in counts:
            raise ValueError(f"unknown node spec {spec!r}")
        count = counts[spec]
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    return shuffled[:count]


class DbNemesis:
    """Jepsen's db nemesis: :kill, :start, :pause and :resume of the nodes a spec names, done
    on them all at once; each recorded as Jepsen records it, the spec asked, then a map of
    node -> what was done (killed, started, already-running, paused, resumed, ...)."""

    def __init__(self, nodes: Nodes, history: History, node_ids: Sequence[str], rng: random.Random) -> None:
        self.nodes = nodes
        self.history = history
        self.node_ids = list(node_ids)
        self.rng = rng

    async def kill(self, spec: NodeSpec, why: str = "the kill nemesis", *, stays_down: bool = True) -> dict[str, str]:
        return await self._step("kill", spec, lambda node: self.nodes.kill(node, why, stays_down=stays_down))

    async def start(self, spec: NodeSpec = "all") -> dict[str, str]:
        return await self._step("start", spec, self.nodes.start_again)

    async def pause(self, spec: NodeSpec) -> dict[str, str]:
        return await self._step("pause", spec, lambda node: self.nodes.pause(node, "the pause nemesis"))

    async def resume(self, spec: NodeSpec = "all") -> dict[str, str]:
        return await self._step("resume", spec, lambda node: self.nodes.resume(node, "the pause nemesis"))

    async def _step(self, f: str, spec: NodeSpec, act: Callable[[str], Awaitable[str]]) -> dict[str, str]:
        self.history.nemesis(f, spec)
        targets = sorted(db_nodes(spec, self.node_ids, self.rng))
        done = dict(zip(targets, await asyncio.gather(*(act(node) for node in targets)), strict=True))
        self.history.nemesis(f, done)
        return done


@dataclass
class FaultPeriod:
    """One kill or pause: when it took effect and ended (seconds since the start; end None:
    never ended), the spec drawn, the nodes it hit, and, for a kill, whether they lost files."""

    start: float
    spec: str | None
    nodes: list[str]
    end: float | None = None
    files_lost: bool = False


class DbPackage:
    """Jepsen's db package as nemesis-package builds it for the faults asked: a kill/start and
    a pause/resume flip-flop, mixed at random (gen/mix), each fault's targets drawn from
    NODE_SPECS; the final generator resumes, then starts, every node."""

    def __init__(self, nemesis: DbNemesis, faults: frozenset[str], targets: Sequence[str | None] = NODE_SPECS) -> None:
        self.nemesis = nemesis
        self.targets = list(targets)  # Jepsen's :targets option of :kill and :pause
        self.rng = nemesis.rng  # the mix, the specs, the targets and this package's stagger
        self.faults = [fault for fault in DB_FAULTS if fault in faults]
        self._recovering = dict.fromkeys(self.faults, False)  # each flip-flop's next half
        self.kills: list[FaultPeriod] = []
        self.pauses: list[FaultPeriod] = []

    async def step(self) -> None:
        """The mix's next operation: a fault, or the recovery from the last one of its kind."""
        fault = self.rng.choice(self.faults)
        recovering = self._recovering[fault]
        self._recovering[fault] = not recovering
        periods = self.kills if fault == "kill" else self.pauses
        if recovering:
            await (self.nemesis.start() if fault == "kill" else self.nemesis.resume())
            self._close(periods)
            return
        spec = self.rng.choice(self.targets)
        done = await (self.nemesis.kill(spec) if fault == "kill" else self.nemesis.pause(spec))
        periods.append(FaultPeriod(round(self.nemesis.history.seconds(), 3), spec,
                                   [node for node, what in done.items() if what in HIT],
                                   files_lost=any(what == "killed-files-lost" for what in done.values())))

    async def final(self) -> None:
        """Jepsen's final generator for the package: resume every node, then start every one."""
        if "pause" in self.faults:
            await self.nemesis.resume()
            self._close(self.pauses)
        if "kill" in self.faults:
            await self.nemesis.start()
            self._close(self.kills)

    def _close(self, periods: list[FaultPeriod]) -> None:
        if periods and periods[-1].end is None:
            periods[-1].end = round(self.nemesis.history.seconds(), 3)

    def periods(self) -> dict[str, list[FaultPeriod]]:
        """Each fault asked for (kill, pause) and its periods so far."""
        return {fault: self.kills if fault == "kill" else self.pauses for fault in self.faults}

    def described(self, dropped_while_down: int) -> dict[str, Any]:
        """What results.json says of the kills and pauses asked for, as of the partitions: how
        many, how many hit any node, how many nodes in all, each period, and the messages sent
        to killed nodes, which the network dropped."""
        found: dict[str, Any] = {}
        for fault, periods in self.periods().items():
            found[f"{fault}s"] = {
                "count": len(periods), "effective": sum(1 for p in periods if p.nodes),
                "nodes_hit": sum(len(p.nodes) for p in periods),
                **({"dropped_messages": dropped_while_down} if fault == "kill" else {}),
                "periods": [{"start": p.start, "end": p.end, "spec": p.spec, "nodes": p.nodes,
                             **({"files_lost": p.files_lost} if fault == "kill" else {})} for p in periods]}
        return found
