"""The partition nemesis as Jepsen's partition package builds it: each spec's grudge, starts and
stops at staggered moments, and the network dropping just what a grudge names."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from kafka_node.maelstrom.history import History
from kafka_node.maelstrom.nemesis import PARTITION_SPECS, Partitioner, complete_grudge, grudge_of
from kafka_node.maelstrom.nemesis_package import NemesisPackage
from kafka_node.maelstrom.network import Envelope, Head, Network

NODES = [f"n{i}" for i in range(5)]


def components(grudge: dict[str, frozenset[str]]) -> set[frozenset[str]]:
    """The groups of a complete grudge: each node with those it still hears."""
    return {frozenset(grudge) - senders for senders in grudge.values()}


def test_a_complete_grudge_cuts_every_link_between_components_and_none_inside():
    grudge = complete_grudge([["n0", "n1"], ["n2"]])
    assert grudge == {"n0": {"n2"}, "n1": {"n2"}, "n2": {"n0", "n1"}}


@pytest.mark.parametrize("seed", range(20))
def test_one_isolates_a_single_node_and_majority_splits_into_halves(seed):
    rng = random.Random(seed)
    assert sorted(map(len, components(grudge_of("one", NODES, rng)))) == [1, 4]
    assert sorted(map(len, components(grudge_of("majority", NODES, rng)))) == [2, 3]
    assert sorted(map(len, components(grudge_of("majority", NODES[:3], rng)))) == [1, 2]


def test_a_minority_third_cuts_nothing_on_three_nodes_and_one_node_of_five():
    rng = random.Random(1)
    assert not any(grudge_of("minority-third", NODES[:3], rng).values())
    assert sorted(map(len, components(grudge_of("minority-third", NODES, rng)))) == [1, 4]


@pytest.mark.parametrize("nodes", [NODES[:3], NODES, [f"n{i}" for i in range(7)]], ids=["3", "5", "7"])
def test_in_a_ring_of_majorities_each_node_hears_a_majority_and_no_two_the_same(nodes):
    for seed in range(10):
        grudge = grudge_of("majorities-ring", nodes, random.Random(seed))
        heard = [frozenset(nodes) - grudge[node] for node in nodes]
        assert all(node in seen and len(seen) > len(nodes) // 2 for node, seen in zip(nodes, heard, strict=True))
        if len(nodes) <= 5:
            assert len(set(heard)) == len(nodes), "the exact ring: every majority differs"


def deliver(net: Network, src: str, dest: str) -> None:
    net.route(src, Envelope(src, dest, b'{"type":"gossip"}'), Head("gossip"), b"")


def test_the_network_drops_what_the_grudge_names_and_counts_it_as_sent_not_received():
    async def scenario() -> tuple[Network, list[str]]:
        net = Network(services={})
        for node in ("n0", "n1"):
            net.add_node(node)
        net.grudge = {"n1": frozenset({"n0"})}
        deliver(net, "n0", "n1")  # dropped
        deliver(net, "n1", "n0")  # the other way is not cut: held for n0, which is not up
        return net, [m.dest for m in net.journal.messages if m.dropped]
    net, dropped = asyncio.run(scenario())
    assert net.dropped == 1 and dropped == ["n1"]
    servers = net.stats.counts["servers"]
    assert servers["send-count"] == 2 and servers["recv-count"] == 0


def test_starts_and_stops_alternate_from_the_first_moment_until_the_main_phase_ends():
    async def scenario() -> tuple[History, Partitioner]:
        history = History()
        net = Network(services={}, clock=history.seconds)
        nemesis = Partitioner(net, history, NODES[:3], random.Random(3))
        package = NemesisPackage([nemesis], history.seconds, asyncio.Lock(), interval=0.05)
        await package.run(end=history.seconds() + 0.6)
        await package.final()  # the final generator's heal
        return history, nemesis
    history, nemesis = asyncio.run(scenario())
    steps = [(op.f, op.value) for op in history.ops]
    assert history.ops[0].time < 0.05e9, "the first start comes at once, as Jepsen's stagger emits it"
    fs = [f for f, _ in steps[::2]]
    main_phase = fs[:-1]  # then the final heal, whatever came last
    assert main_phase[0] == "start-partition" and all(a != b for a, b in itertools.pairwise(main_phase))
    assert steps[-2:] == [("stop-partition", None), ("stop-partition", "network-healed")]
    assert len(fs) >= 4, "about one step per interval"
    assert {spec for f, spec in steps[::2] if f == "start-partition"} <= set(PARTITION_SPECS)
    assert len(nemesis.periods) == fs.count("start-partition") and all(p.end is not None for p in nemesis.periods)
