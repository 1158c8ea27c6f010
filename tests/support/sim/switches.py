"""Each fix of replication switched off, one at a time, by putting back in the process the rule it
replaced (the production code is never edited): the simulator's seeded search must find every one.

    PYTHONPATH=tests python -m support.sim.switches            # each switch: how many seeds it takes
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from kafka_node.replication import insync, membership
from kafka_node.replication.leading import Leading
from kafka_node.replication.ledger import AckLedger
from kafka_node.replication.linkv import LinKv
from kafka_node.replication.partition import PartitionMachine
from kafka_node.replication.rebalance import PreferredLeader
from kafka_node.replication.shell import Replication
from kafka_node.wire.replica import PartitionState


@contextlib.contextmanager
def _patched(owner: Any, name: str, replacement: Any) -> Iterator[None]:
    original = owner.__dict__[name]
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextlib.contextmanager
def given_up_readable() -> Iterator[None]:
    """S1 off: a commit given up on (13 after the replication timeout) counts as held: reads see it."""
    fail = AckLedger._fail

    def failing(ledger: AckLedger, commit: int, now: float) -> None:
        partitions = ledger._waiting.get(commit, set())
        fail(ledger, commit, now)
        ledger.given_up = [*getattr(ledger, "given_up", []), (commit, partitions)]  # type: ignore[attr-defined]

    tick = Replication.tick

    def ticking(shell: Replication, now: float, heard_until: float) -> None:
        tick(shell, now, heard_until)
        for commit, partitions in getattr(shell.ledger, "given_up", []):
            for pid in partitions:
                machine = shell.machines.get(pid)
                if machine is not None and machine.lead is not None:
                    machine.lead.hw = max(machine.lead.hw, commit)
        shell.ledger.given_up = []  # type: ignore[attr-defined]

    with _patched(AckLedger, "_fail", failing), _patched(Replication, "tick", ticking):
        yield


@contextlib.contextmanager
def files_ignored() -> Iterator[None]:
    """S2 off: "this replica lost its data" is not known: any file passes for the one lin-kv names."""
    with _patched(PartitionState, "holds", lambda state, node, file: node in state.eligible):
        yield


@contextlib.contextmanager
def unknown_taken_as_refused() -> Iterator[None]:
    """S3 off: a compare-and-set whose answer never came is taken as not applied."""
    expired = PartitionMachine._expired

    def forgetting(machine: PartitionMachine, event: Any) -> None:
        call = event.call
        expired(machine, event)
        if call.is_cas and machine.lin.uncertain is call:
            machine.lin.uncertain = None
            if machine.lead is not None and machine.lead.proposal is call.to:
                machine.lead.proposal = None

    with _patched(PartitionMachine, "_expired", forgetting):
        yield


@contextlib.contextmanager
def no_lease() -> Iterator[None]:
    """S4 off: a leader reads whether or not its followers can have elected another."""
    with _patched(Leading, "lease_holds", lambda lead, now: True):
        yield


@contextlib.contextmanager
def no_eligible_leader_replicas() -> Iterator[None]:
    """S5 off: no replica out of the in-sync set may ever lead (as Kafka before KIP-966)."""
    state = membership._state

    def without(leader: Any, epoch: int, isr: Any, elr: Any, files: Any, version: int) -> PartitionState:
        return state(leader, epoch, isr, [], files, version)

    with _patched(membership, "_state", without):
        yield


@contextlib.contextmanager
def any_version() -> Iterator[None]:
    """S6 off: a state of lin-kv's is taken whatever its version (a late read's older one too)."""

    def learn(lin: LinKv, state: PartitionState) -> bool:
        lin.known = state
        lin.missing = False
        lin.resolve()
        return True

    with _patched(LinKv, "learn", learn):
        yield


@contextlib.contextmanager
def caught_up_only_at_the_latest_write() -> Iterator[None]:
    """The calm-run fix off: a follower counts as caught up only when it holds the very latest write."""
    answered = Leading.answered

    def noting(lead: Leading, node: str, answer: Any, now: float) -> Any:
        out = answered(lead, node, answer, now)
        progress = lead.progress.get(node)
        if progress is not None and progress.match >= lead.last_write:
            progress.caught_up_at = now  # type: ignore[attr-defined]
        return out

    def lacks_since(lead: Leading, node: str) -> float | None:
        progress = lead.progress[node]
        first = lead.writes.first_after(-1)
        return getattr(progress, "caught_up_at", first) if progress.match < lead.last_write else None

    with _patched(Leading, "answered", noting), _patched(insync, "lacks_since", lacks_since):
        yield


@contextlib.contextmanager
def new_leader_reads_at_once() -> Iterator[None]:
    """A new leader reads at once, while the leader it followed may still read under its lease."""
    init = Leading.__init__

    def at_once(lead: Leading, *args: Any) -> None:
        init(lead, *args)
        lead.serve_after = args[-2]  # now

    with _patched(Leading, "__init__", at_once):
        yield


@contextlib.contextmanager
def restarted_leader_keeps_its_epoch() -> Iterator[None]:
    """A restarted leader leads the epoch lin-kv names again, as if its former incarnation's batches
    not yet durable could never pass for its own."""
    act = PartitionMachine._act

    def trusting(machine: PartitionMachine, now: float) -> None:
        state = machine.known
        if state is not None and state.leader == machine.me and state.holds(machine.me, machine.file):
            machine.proposed_epochs.add(state.epoch)
        act(machine, now)

    with _patched(PartitionMachine, "_act", trusting):
        yield


@contextlib.contextmanager
def acknowledged_before_durable() -> Iterator[None]:
    """A follower acknowledges at once, before what it holds is durable."""
    with _patched(Replication, "_answer_waits_for", lambda shell, pid: 0):
        yield


@contextlib.contextmanager
def takes_before_knowing_lin_kv() -> Iterator[None]:
    """A restarted replica takes a leader's messages before lin-kv told it the latest epoch (and
    any epoch below lin-kv's once it knows), so a deposed leader's catch-up may truncate it."""
    from_leader = PartitionMachine._from_leader

    def taking(machine: PartitionMachine, event: Any) -> None:
        known = machine.known
        if known is None or event.message.epoch < known.epoch:
            machine.lin.known = PartitionState(None, 0, [], -1)  # as if no epoch were known to be later
            try:
                from_leader(machine, event)
            finally:
                machine.lin.known = known
        else:
            from_leader(machine, event)

    with _patched(PartitionMachine, "_from_leader", taking):
        yield


@contextlib.contextmanager
def answers_from_a_lost_file_count() -> Iterator[None]:
    """A follower's late answer from the file it had before it lost its disk counts again."""
    answered = Leading.answered

    def counting(lead: Leading, node: str, answer: Any, now: float) -> Any:
        progress = lead.progress.get(node)
        if progress is not None:
            progress.retired.clear()
            progress.heard_at = float("-inf")
        return answered(lead, node, answer, now)

    with _patched(Leading, "answered", counting):
        yield


@contextlib.contextmanager
def unknown_outcome_read_once() -> Iterator[None]:
    """A compare-and-set of unknown outcome whose read failed is never read again."""
    tick = PartitionMachine._tick

    def ticking(machine: PartitionMachine, event: Any) -> None:
        if machine.lin.uncertain is not None and not machine.lin.calling:
            machine.lin.reread_at = float("inf")
        tick(machine, event)

    with _patched(PartitionMachine, "_tick", ticking):
        yield


@contextlib.contextmanager
def given_up_readable_without_lease() -> Iterator[None]:
    """S1 and S4 off together: a leader that gave up on a write reads it, lease or not. (S1 off
    alone is caught by nothing: a write is given up only when a replica stops acknowledging,
    and one that stops answering stops renewing the lease, so no read shows it anyway.)"""
    with given_up_readable(), no_lease():
        yield


@contextlib.contextmanager
def preferred_never_takes_back() -> Iterator[None]:
    """No preferred-leader election: a partition whose lead moved after a fault keeps that leader."""
    with _patched(PreferredLeader, "due", lambda self, state, following, now: False):
        yield


@contextlib.contextmanager
def preferred_trusts_its_news() -> Iterator[None]:
    """The preferred replica out of the in-sync set waits to hear of its return, never asking lin-kv:
    if that news is lost, it never takes its lead back."""
    with _patched(PreferredLeader, "awaits_return", lambda self, state, following: False):
        yield


@contextlib.contextmanager
def leader_trusts_its_news() -> Iterator[None]:
    """A leader never asks lin-kv whether it still leads: an election applied after the replica
    that asked restarted names a leader no one is, and the partition keeps the old one's epoch."""
    with _patched(PartitionMachine, "_confirm_lead", lambda self, now: None):
        yield


#: Every switch, by name: each puts back one rule the fixes replaced.
SWITCHES: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {
    "S1-given-up-readable": given_up_readable,
    "S1-and-S4-given-up-readable-without-lease": given_up_readable_without_lease,
    "S2-files-ignored": files_ignored,
    "S3-unknown-taken-as-refused": unknown_taken_as_refused,
    "S4-no-lease": no_lease,
    "S5-no-eligible-leader-replicas": no_eligible_leader_replicas,
    "S6-any-version": any_version,
    "calm-caught-up-only-at-the-latest-write": caught_up_only_at_the_latest_write,
    "new-leader-reads-at-once": new_leader_reads_at_once,
    "restarted-leader-keeps-its-epoch": restarted_leader_keeps_its_epoch,
    "acknowledged-before-durable": acknowledged_before_durable,
    "takes-before-knowing-lin-kv": takes_before_knowing_lin_kv,
    "answers-from-a-lost-file-count": answers_from_a_lost_file_count,
    "unknown-outcome-read-once": unknown_outcome_read_once,
    "preferred-never-takes-back": preferred_never_takes_back,
    "preferred-trusts-its-news": preferred_trusts_its_news,
    "leader-trusts-its-news": leader_trusts_its_news,
}

#: Switches whose fault shows only on a calm network (none changes a leader or an in-sync set).
CALM_SWITCHES = {"calm-caught-up-only-at-the-latest-write"}


def first_failure(name: str, start: int = 0, limit: int = 20_000, jobs: int = 1) -> tuple[int | None, int]:
    """The first seed from `start` whose run fails with switch `name` off, and how many seeds
    that took (None: none failed within `limit`), searched by `jobs` processes side by side."""
    chunk = 25
    blocks = [(name, block, min(block + chunk, start + limit)) for block in range(start, start + limit, chunk)]
    with concurrent.futures.ProcessPoolExecutor(jobs) as pool:
        for found in pool.map(_search, *zip(*blocks, strict=True)):
            if found is not None:
                pool.shutdown(cancel_futures=True)
                return found, found - start + 1
    return None, limit


def _search(name: str, start: int, stop: int) -> int | None:
    from support.sim.run import SimulationFailed, simulate

    calm = name in CALM_SWITCHES
    with SWITCHES[name]():
        for seed in range(start, stop):
            try:
                simulate(seed, calm=calm)
            except SimulationFailed:
                return seed
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", default=list(SWITCHES), help="switches to try (default: all)")
    parser.add_argument("--limit", type=int, default=20_000, help="seeds to try at most for each")
    parser.add_argument("--jobs", type=int, default=2, help="processes side by side")
    args = parser.parse_args(argv)
    missed = 0
    for name in args.names:
        began = time.monotonic()
        seed, tried = first_failure(name, limit=args.limit, jobs=args.jobs)
        took = time.monotonic() - began
        if seed is None:
            missed += 1
            print(f"{name}: NOT FOUND in {tried} seeds ({took:.0f} s)", flush=True)
        else:
            print(f"{name}: seed {seed} fails, the {tried}th tried ({took:.0f} s)", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
