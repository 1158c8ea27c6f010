"""Who leads each partition, as this node knows it (for routing requests): from lin-kv's states of
the partitions it holds no replica of, and from its replicas' views; and whose lead moved away."""

from __future__ import annotations

from kafka_node.wire.replica import PartitionState


class Directory:
    """Every partition's leader as last known, newest epoch first, and the leads that moved away
    from a node since last asked: requests sent on to a former leader may be given up on."""

    def __init__(self) -> None:
        self._states: dict[int, PartitionState] = {}  # partitions with no replica here: lin-kv's newest
        self._leads: dict[int, tuple[str | None, int]] = {}  # partition -> (leader, epoch)
        self._moved: list[tuple[str, int]] = []  # (former leader, partition)

    def learned(self, pid: int, state: PartitionState) -> bool:
        """Take lin-kv's state of a partition with no replica here, if newer; whether it was."""
        known = self._states.get(pid)
        if known is not None and state.version <= known.version:
            return False
        self._states[pid] = state
        self.led(pid, state.leader, state.epoch, newest=True)
        return True

    def state(self, pid: int) -> PartitionState | None:
        return self._states.get(pid)

    def led(self, pid: int, leader: str | None, epoch: int, newest: bool = False) -> None:
        """`leader` leads `pid` in `epoch` (an older epoch's news changes nothing). Within one
        epoch, a replica's view naming nobody is older news than one naming its leader, unless
        it is lin-kv's newest state (`newest`): the leader left the lead and nobody took it yet."""
        former, known_epoch = self._leads.get(pid, (None, -1))
        if epoch < known_epoch or leader == former or (epoch == known_epoch and leader is None and not newest):
            return
        self._leads[pid] = (leader, epoch)
        if former is not None and former != leader:
            self._moved.append((former, pid))

    def leader(self, pid: int) -> str | None:
        return self._leads.get(pid, (None, 0))[0]

    def take_moves(self) -> list[tuple[str, int]]:
        """The (former leader, partition) pairs noted since last asked."""
        moved, self._moved = self._moved, []
        return moved
