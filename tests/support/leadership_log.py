"""What our replicated nodes changed in lin-kv during a run, read from their logs (each change is
logged once, by the node whose compare-and-set made it): leader and in-sync set changes once every
partition first had all its replicas in sync."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

#: The line a node logs when its compare-and-set of a partition's state succeeded.
_SET = re.compile(r"partition (\d+): lin-kv set leader=(\S+) epoch=(\d+) isr=(\S*) elr=(\S*) version=(\d+)")


@dataclass(frozen=True)
class Change:
    pid: int
    version: int
    leader: str
    epoch: int
    isr: tuple[str, ...]


@dataclass
class Changes:
    """Per partition, every change in version order; and those after the first time every
    partition had all its replicas in sync (a calm run makes none)."""

    by_partition: dict[int, list[Change]] = field(default_factory=dict)
    replicas: int = 0

    @property
    def settled(self) -> bool:
        return bool(self.by_partition) and all(
            any(len(c.isr) == self.replicas for c in changes) for changes in self.by_partition.values())

    def after_settled(self) -> list[tuple[Change, Change]]:
        """(change before, change) pairs after each partition first had all its replicas in sync."""
        later = []
        for changes in self.by_partition.values():
            full = next((at for at, c in enumerate(changes) if len(c.isr) == self.replicas), len(changes))
            later += list(zip(changes[full:], changes[full + 1:], strict=False))
        return later

    def leader_changes(self) -> int:
        """Changes of leader (a new epoch) after every partition settled."""
        return sum(1 for before, change in self.after_settled() if change.epoch != before.epoch)

    def in_sync_changes(self) -> int:
        """Other changes (the in-sync set, who is eligible) after every partition settled."""
        return len(self.after_settled()) - self.leader_changes()


def changes_in(node_logs: Path, replicas: int) -> Changes:
    """The changes our nodes logged in a run's node-logs/ folder."""
    found = Changes(replicas=replicas)
    seen: set[tuple[int, int]] = set()
    for path in sorted(node_logs.glob("*.log")):
        for match in _SET.finditer(path.read_text(errors="replace")):
            pid, leader, epoch, isr, _elr, version = match.groups()
            if (int(pid), int(version)) in seen:
                continue
            seen.add((int(pid), int(version)))
            found.by_partition.setdefault(int(pid), []).append(
                Change(int(pid), int(version), leader, int(epoch), tuple(filter(None, isr.split(",")))))
    for changes in found.by_partition.values():
        changes.sort(key=lambda change: change.version)
    return found
