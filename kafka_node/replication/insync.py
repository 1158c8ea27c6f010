"""Who a leader keeps in its partition's in-sync set: since when each follower has lacked a write or
gone unanswered, and the change to lin-kv's state that calls for (leave, join, given up)."""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING

from kafka_node.replication import membership
from kafka_node.replication.progress import Phase
from kafka_node.wire.replica import PartitionState

if TYPE_CHECKING:
    from kafka_node.replication.leading import Leading

logger = logging.getLogger("kafka_node.replication")


class WriteTimes:
    """(commit, when) of a partition's writes a follower may still lack, oldest first; the
    epoch's start counts as one, so that followers have `lag` to take the first probe."""

    def __init__(self, start: int, now: float) -> None:
        self._writes: deque[tuple[int, float]] = deque([(start, now)])

    def record(self, commit: int, now: float) -> None:
        self._writes.append((commit, now))

    def first_after(self, match: int) -> float:
        """When the oldest write past `match` was made (-inf: older than any kept)."""
        return next((when for commit, when in self._writes if commit > match), float("-inf"))

    def forget(self, held_by_all: int, horizon: float) -> None:
        """Drop the writes every follower holds, and merge those older than `horizon` into one
        (the newest commit, the oldest time): a follower lacking any of them lags whichever it is."""
        writes = self._writes
        while len(writes) > 1 and writes[0][0] <= held_by_all:
            writes.popleft()
        while len(writes) > 1 and writes[1][1] < horizon:
            oldest = writes.popleft()[1]
            writes[0] = (writes[0][0], oldest)


def lacks_since(lead: Leading, node: str) -> float | None:
    """Since when the follower has lacked something the leader wrote (None: it holds it all)."""
    match = lead.held_by(node) if node in lead.state.isr else lead.progress[node].match
    return None if match >= lead.last_write else lead.writes.first_after(match)


def silent(lead: Leading, node: str, heard_until: float) -> bool:
    """Whether a message sent `node` longer than `lag` ago is still unanswered: a replica
    silent so long keeps the leader from reading under its lease, so it is given up."""
    since = lead.progress[node].unanswered_since
    return since is not None and since < heard_until - lead.timing.lag


def change(lead: Leading, heard_until: float) -> PartitionState | None:
    """What the in-sync set should become, if anything (as lin-kv's next state): a member that
    has lacked a write, or not answered, for longer than `lag`, or answers from another file,
    leaves; a replica that holds everything the leader holds (its log at the epoch's start and
    every write since), and answered lately, joins; with the set large enough to acknowledge
    alone, eligible replicas out of it that hold it back are given up."""
    state, lag = lead.state, lead.timing.lag
    held_by_all = min((lead.held_by(n) if n in state.isr else p.match for n, p in lead.progress.items()), default=0)
    lead.writes.forget(held_by_all, heard_until - 2 * lag)
    lagging, lost, joining = set(), set(), {}
    for node, progress in lead.progress.items():
        since = lacks_since(lead, node)
        if node in state.isr:
            if progress.file is not None and progress.file != state.files.get(node):
                lost.add(node)
            elif (since is not None and since < heard_until - lag) or silent(lead, node, heard_until):
                lagging.add(node)
        elif (progress.phase is Phase.REPLICATE and progress.file is not None
              and progress.match >= max(lead.last_write, lead.ready_at)
              and (since is None or since >= heard_until - lag / 2) and progress.heard_at >= heard_until - lag / 2):
            joining[node] = progress.file
    if lagging or lost:
        logger.info("partition %d: %s out of the in-sync set (lagging: %s; another file: %s)", lead.pid,
                    ",".join(sorted(lagging | lost)), ",".join(sorted(lagging)) or "none", ",".join(sorted(lost)) or "none")
        return membership.shrunk(state, lagging, lost)
    if joining:
        logger.info("partition %d: %s back in the in-sync set", lead.pid, ",".join(sorted(joining)))
        return membership.grown(state, joining)
    if lead.enough_in_sync():
        held = min(lead.held_in_sync(), lead.last_write)
        behind = {node for node in lead.eligible_out() if lead.held_by(node) < held or silent(lead, node, heard_until)}
        if behind:
            logger.info("partition %d: %s eligible no more (lacking a write to acknowledge, or silent)", lead.pid,
                        ",".join(sorted(behind)))
            return membership.given_up(state, behind)
    return None
