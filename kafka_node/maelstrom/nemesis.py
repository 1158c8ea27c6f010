"""Maelstrom's partition nemesis (Jepsen's partition package): grudges of the four partition
specs, started and healed in turn, each step a pair of operations in the history."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from kafka_node.maelstrom.history import History
from kafka_node.maelstrom.network import Network

#: The specs Maelstrom draws from: jepsen.nemesis.combined/partition-specs for a database
#: without primaries, as Maelstrom's is.
PARTITION_SPECS = ("one", "minority-third", "majority", "majorities-ring")
#: The process name Jepsen gives the nemesis in a history.
NEMESIS = "nemesis"

Grudge = dict[str, frozenset[str]]  # receiver -> the senders whose messages it drops

log = logging.getLogger("kafka_node.maelstrom.run")


def complete_grudge(components: Sequence[Sequence[str]]) -> Grudge:
    """No node hears from any node outside its own component (Jepsen's complete-grudge)."""
    universe = frozenset(node for component in components for node in component)
    return {node: universe - frozenset(component) for component in components for node in component}


def majorities_ring(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """Every node hears a majority, no two the same one (Jepsen's exact ring, for up to five
    nodes): a shuffled ring, each window of a majority of consecutive nodes given to its
    middle node, which drops everyone outside the window."""
    ring = list(nodes)
    rng.shuffle(ring)
    n, majority = len(ring), len(ring) // 2 + 1
    universe = frozenset(ring)
    grudge = {}
    for start in range(n):
        window = [ring[(start + i) % n] for i in range(majority)]
        grudge[window[len(window) // 2]] = universe - frozenset(window)
    return grudge


def majorities_ring_stochastic(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """Jepsen's ring for more than five nodes: link a least-connected node to another
    least-connected node it is not linked to, until every node hears a majority."""
    majority = len(nodes) // 2 + 1
    links = {node: {node} for node in nodes}
    while True:
        order = sorted(nodes, key=lambda node: (len(links[node]), rng.random()))
        first = order[0]
        if len(links[first]) >= majority:
            universe = frozenset(nodes)
            return {node: universe - frozenset(links[node]) for node in sorted(nodes)}
        second = next(node for node in order if node not in links[first])
        links[first].add(second)
        links[second].add(first)


def grudge_of(spec: str, nodes: Sequence[str], rng: random.Random) -> Grudge:
    """The grudge a partition spec names, as jepsen.nemesis.combined/grudge computes it."""
    shuffled = list(nodes)
    if spec == "one":
        loner = rng.choice(list(nodes))
        return complete_grudge([[loner], [node for node in nodes if node != loner]])
    if spec == "majority":
        rng.shuffle(shuffled)
        half = len(shuffled) // 2
        return complete_grudge([shuffled[:half], shuffled[half:]])
    if spec == "minority-third":
        rng.shuffle(shuffled)
        third = (len(shuffled) - 1) // 3  # the largest integer below a third: 0 for 3 nodes or fewer
        return complete_grudge([shuffled[:third], shuffled[third:]])
    if spec == "majorities-ring":
        return majorities_ring(nodes, rng) if len(nodes) <= 5 else majorities_ring_stochastic(nodes, rng)
    raise ValueError(f"unknown partition spec {spec!r}")


@dataclass
class Period:
    """One partition: when it began and ended (seconds since the start; None: not healed),
    its spec, its grudge (receiver -> senders dropped), and the messages it dropped."""

    start: float
    spec: str
    grudge: dict[str, list[str]]
    end: float | None = None
    dropped: int = 0
    cut: bool = field(default=False)  # whether the grudge drops anything at all


class Partitioner:
    """Jepsen's partition package: starts a partition of a random spec and heals it, in turn
    (a flip-flop, staggered by the nemesis package, the first step at once), until the main
    phase ends; then the final generator's stop, whether or not a partition is on. Every step
    is a pair of :info operations of the nemesis process, as Jepsen records them."""

    def __init__(self, net: Network, history: History, node_ids: Sequence[str], rng: random.Random) -> None:
        self.net = net
        self.history = history
        self.node_ids = list(node_ids)
        self.rng = rng  # the specs, the grudges, and this package's stagger
        self.periods: list[Period] = []
        self._dropped_before = 0
        self._starting = True

    async def step(self) -> None:
        """The flip-flop's next operation: a start, then a stop, and so on."""
        self.start() if self._starting else self.stop()
        self._starting = not self._starting

    async def final(self) -> None:
        self.stop()

    def start(self) -> None:
        spec = self.rng.choice(PARTITION_SPECS)
        self.history.nemesis("start-partition", spec)
        self._close_period()
        grudge = grudge_of(spec, self.node_ids, self.rng)
        self.net.grudge = grudge
        self._dropped_before = self.net.dropped
        shown = {node: sorted(senders) for node, senders in sorted(grudge.items())}
        self.periods.append(Period(round(self.history.seconds(), 3), spec, shown,
                                   cut=any(grudge.values())))
        self.history.nemesis("start-partition", ["isolated", shown])
        log.info("partition started (%s): %s", spec, shown)

    def stop(self) -> None:
        self.history.nemesis("stop-partition", None)
        self.heal_now()
        self.history.nemesis("stop-partition", "network-healed")
        log.info("network healed")

    def heal_now(self) -> None:
        self.net.grudge = {}
        self._close_period()

    def _close_period(self) -> None:
        if self.periods and self.periods[-1].end is None:
            period = self.periods[-1]
            period.end = round(self.history.seconds(), 3)
            period.dropped = self.net.dropped - self._dropped_before
