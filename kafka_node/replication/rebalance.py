"""When a partition's preferred replica takes its lead back after a failover (Kafka's preferred-leader
election, `auto.leader.rebalance.enable`): so that, faults over, every node leads its own partition."""

from __future__ import annotations

import math

from kafka_node.wire.replica import PartitionState


class PreferredLeader:
    """Kept by every replica, acted on by the preferred one only: since when lin-kv has listed it
    in the in-sync set, with its file, while another replica leads. Taking the lead is then as
    safe as an election: a member of the in-sync set holds every acknowledged write, and the
    compare-and-set fails if the set changed meanwhile."""

    def __init__(self, me: str, preferred: str, file: str, after: float) -> None:
        self.me = me
        self.preferred = preferred
        self.file = file
        self.after = after
        self._since: float | None = None

    def saw(self, state: PartitionState | None, now: float) -> None:
        """Every state of lin-kv's this replica learns (and, at each tick, the newest)."""
        if not self._listed(state):
            self._since = None
        elif self._since is None:
            self._since = now

    def due(self, state: PartitionState | None, following: bool, now: float) -> bool:
        """Whether this replica, following and hearing its leader, should ask to lead now."""
        self.saw(state, now)
        return following and self._since is not None and now - self._since >= self.after

    def awaits_return(self, state: PartitionState | None, following: bool) -> bool:
        """Whether this replica, the preferred one, follows without knowing itself listed in sync
        under another leader: what it knows may be old (news of a change lost on the way), so
        it asks lin-kv now and then."""
        return following and self.after != math.inf and self.me == self.preferred and not self._listed(state)

    def _listed(self, state: PartitionState | None) -> bool:
        """Whether `state` has another replica lead and lists this one, the preferred, in sync with its file."""
        return (self.me == self.preferred and state is not None and state.leader not in (None, self.me)
                and self.me in state.isr and state.holds(self.me, self.file))
