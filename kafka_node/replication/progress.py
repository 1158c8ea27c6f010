"""What a partition's leader knows of one follower in its epoch (etcd raft's Progress): which of
three phases it is in, what it durably holds, what was last sent it, and when it last heard it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum


class Phase(Enum):
    """PROBE: nothing is known of its log (the epoch's start, it refused a batch, or it restarted
    with another file): a whole message is sent it at the next tick, and it is in REPLICATE at
    once (a follower that missed the message refuses the next heartbeat, and is caught up).
    REPLICATE: a whole message was sent it; new batches follow at once, each chained to the one
    before by `after`, and heartbeats when nothing else goes.
    CATCH_UP: it lacks more than fits in a message; it is sent parts, each following the one
    before, several in flight (`parts`), the next as it acknowledges one; the last, whole, once it
    acknowledged every part before it."""

    PROBE = "probe"
    REPLICATE = "replicate"
    CATCH_UP = "catch-up"


@dataclass
class FollowerProgress:
    phase: Phase = Phase.PROBE
    #: The leader's commit up to which it durably holds the partition, in its file `file`.
    match: int = 0
    #: The covers of the last message sent it: the next live batch follows that one.
    sent_covers: int = 0
    #: The covers of the last whole message (probe or catch-up) sent it: refusals of messages
    #: sent before that one are stale and change nothing.
    fence: int = -1
    #: The last batch the catch-up parts sent so far carry (CATCH_UP): the next part follows it.
    end: int = 0
    #: The last batch of each catch-up part sent and not yet acknowledged, oldest first (CATCH_UP).
    parts: list[int] = field(default_factory=list)
    #: When the catch-up's first part was sent (CATCH_UP): a refusal of anything sent before is stale.
    began: float = -math.inf
    last_sent: float = -math.inf
    #: The newest send time of the leader's that it echoed: it heard the leader then or later.
    heard_at: float = -math.inf
    #: When the leader sent it the oldest message it has not answered since its last answer
    #: (None: it answered everything): silence counts from there, not from the last answer, so
    #: that a leader that sent nothing a while (its own loop stalled) blames no follower for it.
    unanswered_since: float | None = None
    #: Its file, as its answers say; None until it answers.
    file: str | None = None
    #: Files it answered from before this one (lost with its disk).
    retired: set[str] = field(default_factory=set)
    #: The leader's commit up to which it surely holds every committed offset (-1: unknown, so
    #: its next whole message carries them all).
    offsets_match: int = -1

    def begin_catch_up(self, after: int, now: float) -> None:
        """Parts follow batch `after`, where its log matches the leader's."""
        self.phase, self.fence, self.end, self.parts, self.began = Phase.CATCH_UP, 0, after, [], now

    def part_sent(self, last: int) -> None:
        self.end = last
        self.parts.append(last)

    def part_taken(self, through: int) -> None:
        """It acknowledged a part: it holds the leader's log up to batch `through` (0: it does not
        say which part, as an older follower: the oldest in flight)."""
        if through:
            self.parts = [end for end in self.parts if end > through]
        elif self.parts:
            del self.parts[0]

    def restart(self) -> None:
        """Back to PROBE, its log unknown (what was sent it no longer counts)."""
        self.phase = Phase.PROBE
        self.last_sent = -math.inf

    def new_file(self, file: str) -> None:
        """It answers from another file than before: it holds nothing known any more, and what
        comes late from the file it had is never heard again."""
        self.restart()
        if self.file is not None:
            self.retired.add(self.file)
        self.file = file
        self.match = 0
        self.sent_covers = 0
        self.fence = -1
        self.offsets_match = -1
