"""Runs the simulator by seed: one seed (its faults and, on a violation, its trace, so that it can be
replayed), or a range of seeds side by side (`make sim`), with what each run did added up.

    PYTHONPATH=tests python -m support.sim.run --seed 42 --trace      # replay one seed
    PYTHONPATH=tests python -m support.sim.run --seeds 0:100000 --jobs 2
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass

from kafka_node.replication.timing import Timing

from support.sim.checks import Violation
from support.sim.faults import draw
from support.sim.world import Outcome, World


class SimulationFailed(AssertionError):
    """A seed's run broke a rule: the rule, the plan, the trace's last lines."""

    def __init__(self, seed: int, plan: str, error: BaseException, trace: list[str]) -> None:
        self.seed = seed
        kind = "violation" if isinstance(error, Violation) else f"error ({type(error).__name__})"
        detail = str(error) if isinstance(error, Violation) else "".join(traceback.format_exception(error))
        super().__init__(f"seed {seed}: {kind}: {detail}\n{plan}\nlast events:\n" + "\n".join(trace) +
                         f"\nreplay: PYTHONPATH=tests python -m support.sim.run --seed {seed} --trace")


def simulate(seed: int, nodes: int | None = None, calm: bool = False, timing: Timing | None = None,
             trace_limit: int = 300) -> Outcome:
    """One seed's run; SimulationFailed if it broke any rule (or the code under test raised)."""
    plan = draw(seed, nodes, calm)
    world = World(plan, timing, calm, trace_limit)
    logging.disable(logging.CRITICAL)  # the nodes' logs would drown the trace
    try:
        return world.run()
    except Exception as error:
        raise SimulationFailed(seed, plan.describe(), error, world.trace_lines()) from error
    finally:
        logging.disable(logging.NOTSET)


@dataclass
class Tally:
    """What a range of seeds did."""

    seeds: int = 0
    failures: int = 0
    events: int = 0
    ops: Counter[str] | None = None
    first_failure: str = ""


def _run_range(start: int, stop: int, calm: bool) -> Tally:
    tally = Tally(ops=Counter())
    for seed in range(start, stop):
        tally.seeds += 1
        try:
            outcome = simulate(seed, calm=calm)
        except SimulationFailed as failure:
            tally.failures += 1
            tally.first_failure = tally.first_failure or str(failure)
            continue
        tally.events += outcome.events
        assert tally.ops is not None
        tally.ops.update(outcome.ops)
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, help="run this seed alone")
    parser.add_argument("--trace", action="store_true", help="with --seed: print its whole trace")
    parser.add_argument("--seeds", default="0:1000", help="START:STOP, the seeds to run (default 0:1000)")
    parser.add_argument("--jobs", type=int, default=1, help="processes side by side")
    parser.add_argument("--calm", action="store_true", help="no fault at all: nothing may change leader or in-sync set")
    parser.add_argument("--switch", help="with --seed: run it with this fix switched off (support.sim.switches)")
    args = parser.parse_args(argv)
    if args.seed is not None and args.switch:
        from support.sim.switches import SWITCHES

        with SWITCHES[args.switch]():
            return _one(args)
    if args.seed is not None:
        return _one(args)
    return _many(args)


def _one(args: argparse.Namespace) -> int:
    """One seed: its plan, and its verdict (on a violation, its trace: whole with --trace)."""
    print(draw(args.seed, calm=args.calm).describe())
    try:
        outcome = simulate(args.seed, calm=args.calm, trace_limit=10**7 if args.trace else 300)
    except SimulationFailed as failure:
        print(failure)
        return 1
    print(f"valid: {outcome.events} events; {dict(sorted(outcome.ops.items()))}; {len(outcome.changes)} changes "
          "in lin-kv")
    return 0


def _many(args: argparse.Namespace) -> int:
    start, stop = map(int, args.seeds.split(":"))
    began = time.monotonic()
    chunks = [(s, min(s + 100, stop)) for s in range(start, stop, 100)]
    total = Tally(ops=Counter())
    with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
        for tally in pool.map(_run_range, *zip(*chunks, strict=True), [args.calm] * len(chunks)):
            total.seeds += tally.seeds
            total.failures += tally.failures
            total.events += tally.events
            total.ops.update(tally.ops or {})  # type: ignore[union-attr]
            total.first_failure = total.first_failure or tally.first_failure
            print(f"\r{total.seeds} seeds, {total.failures} failed, {time.monotonic() - began:.0f} s", end="", flush=True)
    print()
    ok = sum(n for name, n in total.ops.items() if name.endswith(" ok"))  # type: ignore[union-attr]
    print(f"{total.seeds} seeds ({args.seeds}{', calm' if args.calm else ''}) in {time.monotonic() - began:.0f} s "
          f"with {args.jobs} processes: {total.failures} failed; {total.events} events, {ok} operations ok")
    if total.first_failure:
        print(total.first_failure)
    return 1 if total.failures else 0


if __name__ == "__main__":
    sys.exit(main())
