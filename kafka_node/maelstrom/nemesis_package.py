"""Jepsen's nemesis-package as Maelstrom composes it: the partition and db packages --nemesis asks
for, each staggered on its own, their operations done one at a time by the one nemesis process."""

from __future__ import annotations

import argparse
import asyncio
import random
from collections.abc import Callable, Sequence
from typing import Protocol

#: The faults --nemesis takes: Maelstrom's one (partition), and Jepsen's db package's two.
FAULTS = ("partition", "kill", "pause")
#: Mean seconds between two operations of one package (Maelstrom's --nemesis-interval default).
NEMESIS_INTERVAL = 10.0


def faults_of(text: str) -> frozenset[str]:
    """--nemesis as Maelstrom parses it: names separated by commas (spaces around them allowed)."""
    names = [name.strip() for name in text.split(",")]
    unknown = [name for name in names if name not in FAULTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown fault {', '.join(map(repr, unknown))}: choose among "
                                         f"{', '.join(FAULTS)}, separated by commas (e.g. kill,partition)")
    return frozenset(names)


def described(faults: frozenset[str]) -> str | None:
    """The faults as results.json names them: comma-separated, in FAULTS' order."""
    return ",".join(fault for fault in FAULTS if fault in faults) or None


class Package(Protocol):
    """One of Jepsen's nemesis packages: its next operation, its final operations, and the
    random source of its choices and of its stagger."""

    rng: random.Random

    async def step(self) -> None: ...

    async def final(self) -> None: ...


class NemesisPackage:
    """The packages composed as compose-packages does: their generators combined with gen/any,
    each staggered on its own (every pause uniform in [0, 2 x interval), the first operation at
    once), one operation at a time (Jepsen has one nemesis process; `one_at_a_time` is shared
    with the runner's restarts), an operation due while another runs going when that ends;
    operations that would come at or after the time limit are not done. The final generators
    follow one another, in the packages' order."""

    def __init__(self, packages: Sequence[Package], clock: Callable[[], float], one_at_a_time: asyncio.Lock,
                 interval: float = NEMESIS_INTERVAL, ties: random.Random | None = None) -> None:
        self.packages = list(packages)
        self.clock = clock
        self.one_at_a_time = one_at_a_time
        self.interval = interval
        self.ties = ties or random.Random(0)  # which of two packages due at once goes first

    async def run(self, end: float) -> None:
        """Each package's operations at its staggered moments, until the next would come at or
        after `end` (the main phase's time limit)."""
        start = self.clock()
        due = [start] * len(self.packages)
        while True:
            now = self.clock()
            times = [max(at, now) for at in due]  # Jepsen's stagger: late ops go as soon as they can
            soonest = min(times)
            if soonest >= end:
                return
            tied = [i for i, at in enumerate(times) if at == soonest]
            chosen = tied[0] if len(tied) == 1 else self.ties.choice(tied)
            await asyncio.sleep(max(0.0, soonest - now))
            waited = self.one_at_a_time.locked()
            async with self.one_at_a_time:
                if waited:  # another fault ran meanwhile: this one goes now, if still in time
                    soonest = max(soonest, self.clock())
                    if soonest >= end:
                        return
                package = self.packages[chosen]
                await package.step()
            due[chosen] = soonest + package.rng.uniform(0, 2 * self.interval)

    async def final(self) -> None:
        """The final generators, package after package (a heal, then resumes, then starts)."""
        async with self.one_at_a_time:
            for package in self.packages:
                await package.final()
