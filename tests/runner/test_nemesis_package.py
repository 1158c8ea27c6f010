"""Jepsen's nemesis-package as the runner composes it: --nemesis parsed as Maelstrom parses it,
each package staggered on its own, one operation at a time, finals in order, and the partition
package drawing what it drew before the db package existed."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random

import pytest

from kafka_node.maelstrom.db_nemesis import NODE_SPECS, DbPackage, targets_of
from kafka_node.maelstrom.history import History
from kafka_node.maelstrom.nemesis import Partitioner
from kafka_node.maelstrom.nemesis_package import FAULTS, NemesisPackage, described, faults_of
from kafka_node.maelstrom.network import Network

NODES = [f"n{i}" for i in range(5)]


@pytest.mark.parametrize(("text", "faults"), [
    ("partition", {"partition"}), ("kill,partition", {"kill", "partition"}),
    ("pause , kill", {"pause", "kill"}), ("kill,kill", {"kill"}),
])
def test_nemesis_takes_a_comma_separated_set_as_maelstrom_parses_it(text, faults):
    assert faults_of(text) == faults


@pytest.mark.parametrize("text", ["", "clock", "kill,", "partition;kill"])
def test_a_fault_other_than_partition_kill_or_pause_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="partition, kill, pause"):
        faults_of(text)


def test_results_name_the_faults_in_one_order_whatever_order_they_were_asked_in():
    assert described(faults_of("pause,partition,kill")) == ",".join(FAULTS) == "partition,kill,pause"
    assert described(frozenset()) is None


class Steps:
    """A package that records when each of its steps began and ended, each taking `busy` s."""

    def __init__(self, name: str, clock: History, seed: int, busy: float = 0.0) -> None:
        self.name, self.clock, self.busy = name, clock, busy
        self.rng = random.Random(seed)
        self.steps: list[tuple[float, float]] = []
        self.finals: list[str] = []

    async def step(self) -> None:
        began = self.clock.seconds()
        await asyncio.sleep(self.busy)
        self.steps.append((began, self.clock.seconds()))

    async def final(self) -> None:
        self.finals.append(self.name)


def run_packages(packages_of, interval: float, limit: float):
    async def scenario():
        history = History()
        packages = packages_of(history)
        package = NemesisPackage(packages, history.seconds, asyncio.Lock(), interval, random.Random(1))
        start = history.seconds()
        await package.run(end=start + limit)
        await package.final()
        return packages, start
    return asyncio.run(scenario())


def test_each_package_is_staggered_on_its_own_from_the_first_moment_one_step_at_a_time():
    (first, second), start = run_packages(
        lambda history: [Steps("a", history, 1, busy=0.004), Steps("b", history, 2, busy=0.004)],
        interval=0.02, limit=0.6)
    for package in (first, second):
        assert package.steps[0][0] - start < 0.03, "each package's first step comes at once"
        # Due before the limit, a step may begin a little after it when the loop wakes late:
        # Jepsen's time limit, too, judges the time an operation was scheduled for.
        assert all(began < start + 0.6 + 0.1 for began, _ in package.steps), "nothing due at or after the limit"
        assert 8 <= len(package.steps) <= 60, "about one step per interval, each package on its own"
    steps = sorted(first.steps + second.steps)
    assert all(ended <= began for (_, ended), (began, _) in itertools.pairwise(steps)), (
        "one nemesis process: no step begins before the one before it ended")


def test_the_final_operations_come_package_after_package():
    packages, _ = run_packages(lambda history: [Steps("partition", history, 1), Steps("db", history, 2)],
                               interval=0.05, limit=0.1)
    assert [name for package in packages for name in package.finals] == ["partition", "db"]


#: What the partition package drew on five nodes with random.Random("1:nemesis") before kill
#: and pause were added: the same seed must draw the same partitions, alone or beside them.
PARTITIONS_OF_SEED_1 = [
    ("minority-third", {"n0": ["n3"], "n1": ["n3"], "n2": ["n3"], "n3": ["n0", "n1", "n2", "n4"], "n4": ["n3"]}),
    ("majority", {"n0": ["n1", "n2"], "n1": ["n0", "n3", "n4"], "n2": ["n0", "n3", "n4"], "n3": ["n1", "n2"],
                  "n4": ["n1", "n2"]}),
]


@pytest.mark.parametrize("beside", [False, True], ids=["alone", "beside-another-package"])
def test_the_partition_package_draws_what_it_drew_before_alone_or_beside_another(beside):
    def packages_of(history: History) -> list:
        partitioner = Partitioner(Network(services={}, clock=history.seconds), history, NODES,
                                  random.Random("1:nemesis"))
        return [partitioner, *([Steps("db", history, 7)] if beside else [])]

    packages, _ = run_packages(packages_of, interval=0.01, limit=0.3)
    ops = packages[0].history.ops
    drawn = [(asked.value, done.value[1]) for asked, done in zip(ops[::2], ops[1::2], strict=True)
             if asked.f == "start-partition"]
    assert drawn[:2] == PARTITIONS_OF_SEED_1
    assert [op.f for op in ops[-2:]] == ["stop-partition"] * 2, "the final heal"


@pytest.mark.parametrize(("text", "specs"), [
    ("one", ("one",)), ("one, majority", ("one", "majority")), ("random,all", (None, "all")),
])
def test_nemesis_targets_name_jepsens_node_specs(text, specs):
    assert targets_of(text) == specs


@pytest.mark.parametrize("text", ["", "two", "one,"])
def test_a_node_spec_jepsen_does_not_have_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        targets_of(text)


class _RecordingNemesis:
    """Takes the db package's operations and says each hit its first target (no node runs)."""

    def __init__(self) -> None:
        self.rng = random.Random(3)
        self.history = History()
        self.asked: list[tuple[str, object]] = []

    async def kill(self, spec: object) -> dict[str, str]:
        self.asked.append(("kill", spec))
        return {"n0": "killed"}

    async def pause(self, spec: object) -> dict[str, str]:
        self.asked.append(("pause", spec))
        return {"n0": "paused"}

    async def start(self) -> dict[str, str]:
        return {"n0": "started"}

    async def resume(self) -> dict[str, str]:
        return {"n0": "resumed"}


def test_kills_and_pauses_draw_their_targets_only_from_the_specs_asked():
    nemesis = _RecordingNemesis()
    package = DbPackage(nemesis, frozenset({"kill", "pause"}), targets_of("one"))  # type: ignore[arg-type]

    async def steps() -> None:
        for _ in range(40):
            await package.step()

    asyncio.run(steps())
    assert len(nemesis.asked) >= 10 and {spec for _, spec in nemesis.asked} == {"one"}
    everything = DbPackage(_RecordingNemesis(), frozenset({"kill"}))  # type: ignore[arg-type]
    assert everything.targets == list(NODE_SPECS)
