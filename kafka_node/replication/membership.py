"""How a partition's leadership may change, as lin-kv states each made from the one it changes:
creation, the in-sync set shrinking and growing, give-ups, election, resuming, and a lost file."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kafka_node.wire.replica import PartitionState


def _state(leader: str | None, epoch: int, isr: Iterable[str], elr: Iterable[str], files: Mapping[str, str],
           version: int) -> PartitionState:
    """A state with the rules that make it one: the eligible leader replicas (ELR) are out of the
    in-sync set; files are kept for eligible replicas only."""
    in_sync = sorted(set(isr))
    eligible_out = sorted(set(elr) - set(in_sync))
    kept = set(in_sync) | set(eligible_out)
    return PartitionState(leader, epoch, in_sync, version, eligible_out,
                          {node: file for node, file in sorted(files.items()) if node in kept})


def created(me: str, file: str, epoch: int, replicas: Iterable[str]) -> PartitionState:
    """The partition's first state: this replica leads, alone in sync. Nothing has been
    acknowledged yet, so every other replica holds every acknowledged write, whatever its file:
    they are eligible (until they join the set, or the leader acknowledges a write without them)."""
    return _state(me, epoch, [me], [r for r in replicas if r != me], {me: file}, 1)


def shrunk(state: PartitionState, lagging: Iterable[str], lost: Iterable[str]) -> PartitionState:
    """`lagging` replicas leave the in-sync set, eligible still: they hold every write acknowledged
    so far, and the leader acknowledges none without them until it gives them up (`given_up`).
    `lost` ones, whose file is not the one lin-kv names, leave it and are eligible no more."""
    lagging, lost = set(lagging), set(lost)
    isr = [node for node in state.isr if node not in lagging | lost]
    elr = [node for node in [*state.elr, *lagging] if node not in lost]
    files = {node: file for node, file in state.files.items() if node not in lost}
    return _state(state.leader, state.epoch, isr, elr, files, state.version + 1)


def given_up(state: PartitionState, nodes: Iterable[str]) -> PartitionState:
    """Eligible replicas out of the in-sync set that the leader gives up, to acknowledge a write
    they lack (the set is large enough without them): they are eligible no more."""
    gone = set(nodes)
    return _state(state.leader, state.epoch, state.isr, [node for node in state.elr if node not in gone], state.files,
                  state.version + 1)


def grown(state: PartitionState, joining: Mapping[str, str]) -> PartitionState:
    """Replicas that hold everything the leader holds join the in-sync set, each with its file."""
    return _state(state.leader, state.epoch, [*state.isr, *joining], state.elr, {**state.files, **joining},
                  state.version + 1)


def elected(state: PartitionState, me: str, file: str) -> PartitionState:
    """This eligible replica leads the next epoch; the replica that led leaves the in-sync set,
    eligible still (it held every acknowledged write)."""
    former = state.leader
    isr = [node for node in state.isr if node != former] + [me]
    elr = [*state.elr, *([former] if former is not None and former in state.isr else [])]
    return _state(me, state.epoch + 1, isr, elr, {**state.files, me: file}, state.version + 1)


def resumed(state: PartitionState, me: str) -> PartitionState:
    """This replica leads the next epoch, the sets as they are. A restarted leader whose file
    lin-kv still names leads again so, in a new epoch: what its former incarnation sent but never
    made durable must never pass for this one's batches. The partition's preferred replica, in
    the in-sync set, takes its lead back so too: the replica that led stays in the set (it holds
    every acknowledged write; what it wrote past them it truncates as it follows)."""
    return _state(me, state.epoch + 1, state.isr, state.elr, state.files, state.version + 1)


def forsaken(state: PartitionState, me: str) -> PartitionState:
    """A replica that lost its file leaves the in-sync set and the eligible replicas, and the
    lead if it had it: nobody leads until an eligible replica takes it."""
    leader = None if state.leader == me else state.leader
    isr = [node for node in state.isr if node != me]
    elr = [node for node in state.elr if node != me]
    files = {node: file for node, file in state.files.items() if node != me}
    return _state(leader, state.epoch, isr, elr, files, state.version + 1)
