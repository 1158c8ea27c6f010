"""Replication proved by seeded, replayable simulation (tests/support/sim/): the real partition
machines and shell on in-memory logs, every fault drawn from a seed, every rule checked after every
event; and each fix, switched off, caught by the same search."""

from __future__ import annotations

import pytest

from support.sim.run import SimulationFailed, simulate
from support.sim.switches import CALM_SWITCHES, SWITCHES

#: Seeds each CI run tries: blocks side by side, each a test of its own.
FAULT_BLOCKS = [(start, start + 20) for start in range(0, 200, 20)]
CALM_SEEDS = range(1000, 1040)

#: For each fix switched off, a seed whose run the switch makes fail (found by
#: `PYTHONPATH=tests python -m support.sim.switches`, which docs/replication.md quotes).
#: If a change of the simulator or the node moves them, the search below finds the next.
CAUGHT_BY = {
    "S1-given-up-readable": 0,
    "S2-files-ignored": 0,
    "S3-unknown-taken-as-refused": 0,
    "S4-no-lease": 0,
    "S5-no-eligible-leader-replicas": 0,
    "S6-any-version": 0,
    "calm-caught-up-only-at-the-latest-write": 0,
    "new-leader-reads-at-once": 0,
    "restarted-leader-keeps-its-epoch": 0,
    "acknowledged-before-durable": 0,
}
#: Seeds searched past the recorded one before a switch counts as not caught.
SEARCH = 200


@pytest.mark.parametrize(("start", "stop"), FAULT_BLOCKS, ids=[f"seeds-{a}-{b - 1}" for a, b in FAULT_BLOCKS])
def test_no_seed_breaks_a_rule_under_faults(start, stop):
    for seed in range(start, stop):
        simulate(seed)  # SimulationFailed names the rule, the faults and the trace, and how to replay it


def test_a_calm_network_changes_no_leader_and_no_in_sync_set():
    """No fault at all, but latency, a long tail on 1% of messages, and nodes' loops stalled up to
    0.3 s: once every replica is in sync, nothing in lin-kv changes again."""
    for seed in CALM_SEEDS:
        outcome = simulate(seed, calm=True)
        assert outcome.ops.get("send ok", 0) > 0


@pytest.mark.parametrize("name", list(SWITCHES))
def test_each_fix_switched_off_is_caught_by_the_seeded_search(name):
    calm = name in CALM_SWITCHES
    first = CAUGHT_BY[name]
    with SWITCHES[name]():
        for seed in range(first, first + SEARCH):
            try:
                simulate(seed, calm=calm)
            except SimulationFailed:
                break
        else:
            pytest.fail(f"{name}: no seed from {first} to {first + SEARCH - 1} fails with the fix switched off")
    simulate(seed, calm=calm)  # and with the fix on, that seed's run holds every rule


def test_a_seed_replays_to_the_same_run():
    with SWITCHES["S4-no-lease"]():
        failures = []
        for _ in range(2):
            with pytest.raises(SimulationFailed) as failed:
                simulate(CAUGHT_BY["S4-no-lease"], trace_limit=10**6)
            failures.append(str(failed.value))
    assert failures[0] == failures[1]
