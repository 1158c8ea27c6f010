"""Leading, one partition led in one epoch, over a log held in lists: the high watermark (what every
in-sync member and every eligible replica out of the set holds, in the file lin-kv names; frozen while
the set is below --min-insync), the changes to the in-sync set it proposes (lagging members out into
the ELR, lost ones out for good, caught-up replicas in, ELR members holding it back given up), its read
lease, and what a refusal or a catch-up part's acknowledgement brings."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pytest

from kafka_node.replication import insync
from kafka_node.replication.epochs import EpochCache
from kafka_node.replication.events import Entry
from kafka_node.replication.leading import CATCH_UP_MESSAGES, CATCH_UP_PARTS, Leading
from kafka_node.replication.progress import Phase
from kafka_node.replication.timing import Timing
from kafka_node.wire import Sent
from kafka_node.wire.replica import PartitionState, Replicate, ReplicateOk, ReplicateRefused

PID = 3
ME = "n0"
REPLICAS = ["n0", "n1", "n2"]
EPOCH = 2  # the epoch led; the log holds batches of epoch 1 from before it
F0, F1, F2 = "file-0", "file-1", "file-2"
FILES = {"n0": F0, "n1": F1, "n2": F2}
START = 3  # the leader's commits (and batches, of epoch 1) when its epoch starts
TIMING = Timing()  # lag 0.5, lease 0.5, heartbeat 0.1, resend 0.5


class ListLog:
    """The read port of a node's log (ports.PartitionLog) over lists, for partition PID alone:
    batch `seq` is `batches[seq - 1]`; each write is one commit."""

    def __init__(self, sizes: Iterable[int] = (1,) * START, epoch: int = 1, file_id: str = F0) -> None:
        self.file_id = file_id
        self.commits = 0
        self.batches: list[list[Entry]] = []
        self.committed: dict[str, int] = {}
        for size in sizes:
            self.write(epoch, size)

    def write(self, epoch: int, size: int = 1) -> int:
        """Commit a batch of `size` messages of key k in `epoch`; the commit's number."""
        seq, offset = len(self.batches) + 1, sum(map(len, self.batches))
        self.batches.append([Entry("k", offset + i, seq, epoch, f'"m{seq}.{i}"') for i in range(size)])
        self.commits += 1
        return self.commits

    def epoch_ranges(self, pid: int) -> tuple[list[tuple[int, int]], int]:
        assert pid == PID
        ranges: list[tuple[int, int]] = []
        for seq, batch in enumerate(self.batches, start=1):
            if not ranges or ranges[-1][0] != batch[0].epoch:
                ranges.append((batch[0].epoch, seq))
        return ranges, len(self.batches)

    def batch(self, pid: int, seq: int) -> list[Entry]:
        assert pid == PID
        return list(self.batches[seq - 1])

    def batches_after(self, pid: int, seq: int, limit: int) -> list[Entry]:
        assert pid == PID
        entries: list[Entry] = []
        for batch in self.batches[seq:]:
            entries += batch
            if len(entries) >= limit:
                break
        return entries

    def committed_of(self, pid: int) -> dict[str, int]:
        assert pid == PID
        return dict(self.committed)

    def committed_offsets(self, keys: Iterable[str]) -> dict[str, int]:
        return {key: self.committed[key] for key in keys if key in self.committed}


def S(isr, version=5, elr=(), files=None) -> PartitionState:
    """A state naming this replica leader of EPOCH."""
    return PartitionState(ME, EPOCH, list(isr), version, list(elr), dict(FILES if files is None else files))


def files(*nodes: str) -> dict[str, str]:
    return {node: FILES[node] for node in nodes}


ALL_IN = S(["n0", "n1", "n2"])
PAIR = S(["n0", "n1"], files=files("n0", "n1"))  # n2 not eligible
N2_OUT = S(["n0", "n1"], elr=["n2"])  # n2 in the ELR, with its file
ALONE = S(["n0"], files=files("n0"))  # nobody else eligible
NEW = S(["n0"], elr=["n1", "n2"], files=files("n0"))  # both others in the ELR without a file (a new partition)


def leading(state: PartitionState, min_insync: int = 2, proposal: PartitionState | None = None,
            log: ListLog | None = None, serve_after: float = 0.0) -> Leading:
    """A leader starting its epoch at time 0, as a partition machine starts one: every follower probed."""
    log = ListLog() if log is None else log
    lead = Leading(PID, ME, state, REPLICAS, log, EpochCache(*log.epoch_ranges(PID)), TIMING, min_insync, 0.0,
                   serve_after)
    for node in lead.progress:
        lead.probe(node, 0.0)
    lead.proposal = proposal
    return lead


# --- what happens to a leader, in order --------------------------------------------------------

Event = Callable[[Leading], list[Sent]]


def write(now: float) -> Event:
    """A commit writes a batch of the epoch to the partition."""
    def event(lead: Leading) -> list[Sent]:
        assert isinstance(lead.log, ListLog)
        return lead.wrote(lead.log.write(EPOCH), True, {}, now)
    return event


def tick(now: float) -> Event:
    return lambda lead: lead.tick(now)


def ok(node: str, covers: int, sent: float, file: str | None = None, now: float | None = None) -> Event:
    """`node` holds the log up to `covers` (in `file`, its own unless named), echoing `sent`."""
    answer = ReplicateOk(part=PID, epoch=EPOCH, covers=covers, file=FILES[node] if file is None else file, sent=sent)
    return lambda lead: lead.answered(node, answer, sent if now is None else now)


def refused(node: str, covers: int, sent: float, at: int, at_epoch: int, now: float | None = None) -> Event:
    """`node` refused the message that covered `covers`, sent at `sent`: its batch `at` has `at_epoch`."""
    answer = ReplicateRefused(part=PID, epoch=EPOCH, covers=covers, at=at, at_epoch=at_epoch, file=FILES[node], sent=sent)
    return lambda lead: lead.answered(node, answer, sent if now is None else now)


def run(lead: Leading, events: Iterable[Event]) -> list[Sent]:
    """Every event in turn; what the last sent."""
    sent: list[Sent] = []
    for event in events:
        sent = event(lead)
    return sent


ACKED = [ok("n1", START, 0.0), ok("n2", START, 0.0)]  # both answered the epoch's probe
WRITES = [write(1.0), write(1.1), write(1.2)]  # commits 4, 5, 6


# --- (1) the high watermark: the in-sync set -----------------------------------------------------

@dataclass
class Watermark:
    state: PartitionState
    events: list[Event]
    hw: int | None  # what high_watermark() gives (None: it did not move from 0)
    proposal: PartitionState | None = None
    min_insync: int = 2


WATERMARKS = {
    "the least any member acknowledged": Watermark(
        ALL_IN, [*WRITES, ok("n1", 6, 1.2), ok("n2", 5, 1.1)], 5),
    "every member holding the last write: that write": Watermark(
        ALL_IN, [*WRITES, ok("n1", 6, 1.2), ok("n2", 6, 1.2)], 6),
    "a member not heard since the epoch began holds it at nothing": Watermark(
        ALL_IN, [*WRITES, ok("n1", 6, 1.2)], None),
    "an answer from a file lin-kv does not name counts for nothing": Watermark(
        ALL_IN, [*WRITES, ok("n1", 6, 1.2), ok("n2", 6, 1.2, file="file-2b")], None),
    "an answer from another file than the member's earlier ones undoes what it held": Watermark(
        ALL_IN, [*WRITES, ok("n1", 6, 1.2), ok("n2", 5, 1.1), ok("n2", 6, 1.2, file="file-2b")], None),
    "alone in sync at --min-insync 1: everything the leader committed": Watermark(
        ALONE, WRITES, 6, min_insync=1),
    "a replica neither in sync nor eligible is not waited for": Watermark(
        PAIR, [*WRITES, ok("n1", 6, 1.2)], 6),
    "below --min-insync: frozen, though every member holds everything": Watermark(
        PAIR, [*WRITES, ok("n1", 6, 1.2), ok("n2", 6, 1.2)], None, min_insync=3),
    "a proposed set below --min-insync freezes it": Watermark(
        ALL_IN, [*WRITES, ok("n1", 6, 1.2), ok("n2", 6, 1.2)], None, proposal=S(["n0", "n1"], 6, files=files("n0", "n1")),
        min_insync=3),
    "the known set below --min-insync freezes it, though the proposed one is large enough": Watermark(
        PAIR, [*WRITES, ok("n1", 6, 1.2), ok("n2", 6, 1.2)], None, proposal=S(["n0", "n1", "n2"], 6), min_insync=3),
    "a member proposed out, its file with it, holds it back until lin-kv takes the change": Watermark(
        ALL_IN, [*WRITES, ok("n1", 6, 1.2), ok("n2", 4, 1.0)], None, proposal=S(["n0", "n1"], 6, files=files("n0", "n1"))),
    "a member proposed out keeping its file in the ELR is waited for": Watermark(
        ALL_IN, [*WRITES, ok("n1", 6, 1.2), ok("n2", 4, 1.0)], 4, proposal=S(["n0", "n1"], 6, elr=["n2"])),
    "a replica proposed in with its file counts for nothing until lin-kv names that file": Watermark(
        PAIR, [*WRITES, ok("n1", 6, 1.2), ok("n2", 4, 1.0)], None, proposal=S(["n0", "n1", "n2"], 6)),
    "a replica proposed in answering from another file than the one proposed counts for nothing": Watermark(
        PAIR, [*WRITES, ok("n1", 6, 1.2), ok("n2", 6, 1.2)], None,
        proposal=S(["n0", "n1", "n2"], 6, files={**FILES, "n2": "file-2b"})),
    "a replica proposed into the ELR with a file lin-kv does not name yet holds it back": Watermark(
        PAIR, [*WRITES, ok("n1", 6, 1.2), ok("n2", 4, 1.0)], None, proposal=S(["n0", "n1"], 6, elr=["n2"])),
}


@pytest.mark.parametrize("case", WATERMARKS.values(), ids=WATERMARKS.keys())
def test_the_high_watermark_is_the_least_every_member_holds_in_its_named_file(case):
    lead = leading(case.state, case.min_insync, case.proposal)
    run(lead, case.events)
    assert lead.high_watermark() == case.hw
    assert lead.hw == (case.hw or 0)


def test_the_high_watermark_never_moves_back_and_the_leader_serves_once_its_start_is_held():
    lead = leading(ALL_IN)
    run(lead, [ok("n1", START, 0.0)])
    assert (lead.high_watermark(), lead.ready) == (None, False)
    run(lead, [ok("n2", START, 0.0)])
    assert (lead.high_watermark(), lead.ready) == (START, True)
    run(lead, [*WRITES, ok("n1", 6, 1.2), ok("n2", 5, 1.1)])
    assert lead.high_watermark() == 5
    run(lead, [ok("n2", 6, 1.3, file="file-2b")])  # n2 lost its file: it holds nothing known
    assert (lead.high_watermark(), lead.hw) == (None, 5)



def test_a_late_answer_from_the_file_a_follower_lost_never_counts_again():
    lead = leading(ALL_IN)
    run(lead, [ok("n1", START, 0.0), ok("n2", START, 0.0), *WRITES, ok("n1", 6, 1.2)])
    run(lead, [ok("n2", START, 1.2, file="file-2b")])  # n2 restarted on a new file: it holds nothing known
    run(lead, [ok("n2", 6, 1.25)])  # its lost file's answer to a later message, delayed on the way
    assert (lead.progress["n2"].file, lead.high_watermark()) == ("file-2b", None)

# --- (2) the high watermark: the eligible replicas out of the set -------------------------------

@dataclass
class Eligible:
    state: PartitionState
    events: list[Event]
    hw: int | None
    change: PartitionState | None  # what insync.change(lead, heard_until) proposes
    min_insync: int = 2
    heard_until: float = 1.3


ELIGIBLE = {
    "an ELR member caps it at what it holds, and is given up once the set alone may acknowledge": Eligible(
        N2_OUT, [*WRITES, ok("n1", 6, 1.2), ok("n2", 4, 1.0)], 4, S(["n0", "n1"], 6, files=files("n0", "n1"))),
    "an ELR member not heard since the epoch began holds it at nothing, and is given up": Eligible(
        N2_OUT, [*WRITES, ok("n1", 6, 1.2)], None, S(["n0", "n1"], 6, files=files("n0", "n1"))),
    "an ELR member answering from a file lin-kv does not name holds it at nothing, and is given up": Eligible(
        N2_OUT, [*WRITES, ok("n1", 6, 1.2), ok("n2", 5, 1.1, file="file-2b")], None, S(["n0", "n1"], 6, files=files("n0", "n1"))),
    "an ELR member holding what the set holds is kept, though both lack the last write": Eligible(
        N2_OUT, [*WRITES, ok("n1", 5, 1.1), ok("n2", 5, 1.1)], 5, None),
    "an ELR member holding everything lately joins the set rather than being given up": Eligible(
        N2_OUT, [*WRITES, ok("n1", 5, 1.1), ok("n2", 6, 1.2)], 5, S(["n0", "n1", "n2"], 6)),
    "below --min-insync, an ELR member holding it back is not given up": Eligible(
        N2_OUT, [*WRITES, ok("n1", 6, 1.2), ok("n2", 4, 1.0)], None, None, min_insync=3),
    "the leader alone in sync at --min-insync 1 gives up every ELR member behind at once": Eligible(
        NEW, [*WRITES, ok("n1", 4, 1.0)], None, S(["n0"], 6, files=files("n0")), min_insync=1),
    "the leader alone in sync below --min-insync gives up nobody": Eligible(
        NEW, [*WRITES, ok("n1", 4, 1.0)], None, None, min_insync=2),
}


@pytest.mark.parametrize("case", ELIGIBLE.values(), ids=ELIGIBLE.keys())
def test_eligible_replicas_out_of_the_set_cap_the_high_watermark_until_given_up(case):
    lead = leading(case.state, case.min_insync)
    run(lead, case.events)
    assert lead.high_watermark() == case.hw
    assert insync.change(lead, case.heard_until) == case.change


def test_a_member_shrunk_out_holds_the_high_watermark_back_until_lin_kv_gave_it_up():
    lead = leading(ALL_IN)
    run(lead, ACKED)
    assert lead.high_watermark() == START
    run(lead, [write(1.0), ok("n2", 4, 1.0)])  # n1 never answers the write
    shrunk = S(["n0", "n2"], 6, elr=["n1"])
    assert insync.change(lead, 1.51) == shrunk
    lead.proposal = shrunk
    assert lead.high_watermark() is None
    lead.state, lead.proposal = shrunk, None  # lin-kv took it: n1 is out of the set, eligible still
    assert lead.high_watermark() is None
    given_up = S(["n0", "n2"], 7, files=files("n0", "n2"))
    assert insync.change(lead, 1.6) == given_up
    lead.proposal = given_up
    assert lead.high_watermark() is None  # not until lin-kv took that too
    lead.state, lead.proposal = given_up, None
    assert lead.high_watermark() == 4


# --- (3) and (4) the in-sync set: who leaves, who joins ------------------------------------------

@dataclass
class Change:
    state: PartitionState
    events: list[Event]
    heard_until: float
    change: PartitionState | None  # what insync.change(lead, heard_until) proposes
    min_insync: int = 2


# n1 lacks the write of 1.0: it refused it, and answered nothing since the catch-up sent it at 1.4
LACKING = [*ACKED, write(1.0), ok("n2", 4, 1.0), refused("n1", 4, 1.0, at=3, at_epoch=1, now=1.4)]
# n1 holds everything, but left the heartbeat of 1.0 unanswered
SILENT = [*ACKED, tick(1.0), ok("n2", START, 1.0)]
N1_OUT = S(["n0", "n2"], 6, elr=["n1"])  # n1 out into the ELR, with its file
N1_LOST = S(["n0", "n2"], 6, files=files("n0", "n2"))

CHANGES = {
    # --- members leaving
    "a member lacking a write for longer than lag leaves into the ELR with its file": Change(
        ALL_IN, LACKING, 1.51, N1_OUT),
    "a member lacking a write for lag exactly stays": Change(
        ALL_IN, LACKING, 1.5, None),
    "a member that left a message unanswered for longer than lag leaves into the ELR with its file": Change(
        ALL_IN, SILENT, 1.51, N1_OUT),
    "a member that left a message unanswered for lag exactly stays": Change(
        ALL_IN, SILENT, 1.5, None),
    "an answer to a message sent before the one unanswered does not count": Change(
        ALL_IN, [*SILENT, ok("n1", START, 0.0, now=1.3)], 1.51, N1_OUT),
    "an answer to the message unanswered does": Change(
        ALL_IN, [*SILENT, ok("n1", START, 1.0, now=1.3)], 1.51, None),
    "members that answered everything sent them stay, however long the leader sent nothing": Change(
        ALL_IN, ACKED, 10.0, None),
    "a member answering from a file lin-kv does not name leaves, eligible no more": Change(
        ALL_IN, [ok("n1", START, 0.0, file="file-1b"), ok("n2", START, 0.0)], 0.1, N1_LOST),
    "a member that answered from its file, then from another, leaves, eligible no more": Change(
        ALL_IN, [*ACKED, ok("n1", START, 0.1, file="file-1b")], 0.2, N1_LOST),
    "lagging and lost members leave in one change": Change(
        ALL_IN, [ok("n1", START, 0.0, file="file-1b"), ok("n2", START, 0.0), tick(1.0)], 1.51,
        S(["n0"], 6, elr=["n2"], files=files("n0", "n2"))),
    "a lagging member leaves before an ELR member is given up": Change(
        N2_OUT, [ok("n1", START, 0.0), tick(1.0)], 1.51, S(["n0"], 6, elr=["n1", "n2"]), min_insync=1),
    # --- replicas joining
    "a replica out of the set holding everything, heard within lag/2, joins with its file": Change(
        PAIR, [*ACKED], 0.25, S(["n0", "n1", "n2"], 6)),
    "an ELR member holding everything, heard within lag/2, leaves the ELR for the set": Change(
        N2_OUT, [*ACKED], 0.25, S(["n0", "n1", "n2"], 6)),
    "a replica joins with the file it answers from": Change(
        PAIR, [ok("n1", START, 0.0), ok("n2", START, 0.0, file="file-2b")], 0.25,
        S(["n0", "n1", "n2"], 6, files={**FILES, "n2": "file-2b"})),
    "a replica last heard longer than lag/2 ago does not join": Change(
        PAIR, [*ACKED], 0.26, None),
    "a replica lacking the last write does not join": Change(
        PAIR, [*ACKED, write(1.0), ok("n1", 4, 1.0), refused("n2", 4, 1.0, at=3, at_epoch=1, now=1.05)], 1.1, None),
    "a replica joins once it holds the last write": Change(
        PAIR, [*ACKED, write(1.0), ok("n1", 4, 1.0), refused("n2", 4, 1.0, at=3, at_epoch=1, now=1.05), ok("n2", 4, 1.05)],
        1.1, S(["n0", "n1", "n2"], 6)),
    "a replica holding less than the log at the epoch's start does not join": Change(
        PAIR, [ok("n1", START, 0.0), ok("n2", START - 1, 0.0)], 0.1, None),
    "a replica answering from a new file is probed again before it may join": Change(
        PAIR, [*ACKED, ok("n2", START, 0.1, file="file-2b")], 0.2, None),
}


@pytest.mark.parametrize("case", CHANGES.values(), ids=CHANGES.keys())
def test_the_in_sync_set_loses_lagging_and_lost_members_and_gains_caught_up_replicas(case):
    lead = leading(case.state, case.min_insync)
    run(lead, case.events)
    assert insync.change(lead, case.heard_until) == case.change


# --- (5) the read lease ---------------------------------------------------------------------------

@dataclass
class Lease:
    state: PartitionState
    events: list[Event]
    now: float
    holds: bool
    proposal: PartitionState | None = None
    serve_after: float = 0.0


ECHOED = [tick(1.0), ok("n1", START, 1.0), ok("n2", START, 1.0)]  # both echoed the heartbeat of 1.0

LEASES = {
    "every eligible replica echoed a send within lease": Lease(ALL_IN, ECHOED, 1.49, True),
    "not once lease has passed since": Lease(ALL_IN, ECHOED, 1.5, False),
    "a member that echoed only an older send does not grant it": Lease(
        ALL_IN, [tick(1.0), ok("n1", START, 1.0), ok("n2", START, 0.0, now=1.2)], 1.4, False),
    "an older echo after a newer one takes nothing off": Lease(ALL_IN, [*ECHOED, ok("n2", START, 0.0, now=1.2)], 1.49, True),
    "an ELR member must have echoed too": Lease(N2_OUT, [tick(1.0), ok("n1", START, 1.0)], 1.4, False),
    "an ELR member that echoed grants it": Lease(N2_OUT, ECHOED, 1.4, True),
    "ELR members without a file (a new partition) must have echoed too": Lease(NEW, [tick(1.0), ok("n1", START, 1.0)], 1.4,
                                                                                False),
    "ELR members without a file that echoed grant it": Lease(NEW, ECHOED, 1.4, True),
    "a replica neither in sync nor eligible need not echo": Lease(PAIR, [tick(1.0), ok("n1", START, 1.0)], 1.4, True),
    "a replica proposed into the set must have echoed": Lease(
        PAIR, [tick(1.0), ok("n1", START, 1.0)], 1.4, False, proposal=S(["n0", "n1", "n2"], 6)),
    "an ELR member proposed to be given up must still have echoed": Lease(
        N2_OUT, [tick(1.0), ok("n1", START, 1.0)], 1.4, False, proposal=S(["n0", "n1"], 6, files=files("n0", "n1"))),
    "a replica proposed into the ELR must have echoed": Lease(
        PAIR, [tick(1.0), ok("n1", START, 1.0)], 1.4, False, proposal=S(["n0", "n1"], 6, elr=["n2"])),
    "never before serve_after": Lease(ALL_IN, ECHOED, 1.4, False, serve_after=1.45),
    "from serve_after on": Lease(ALL_IN, ECHOED, 1.45, True, serve_after=1.45),
    "alone and nobody else eligible: from serve_after on": Lease(ALONE, [], 7.0, True, serve_after=7.0),
    "alone and nobody else eligible: not before": Lease(ALONE, [], 6.9, False, serve_after=7.0),
}


@pytest.mark.parametrize("case", LEASES.values(), ids=LEASES.keys())
def test_the_lease_holds_while_every_eligible_replica_echoed_a_send_within_lease(case):
    lead = leading(case.state, proposal=case.proposal, serve_after=case.serve_after)
    run(lead, case.events)
    assert lead.lease_holds(case.now) is case.holds


# --- (6) what a refusal or a catch-up part's acknowledgement brings ------------------------------

def summary(sent: Sent) -> tuple:
    """(to, prev, the seqs of its batches, covers, whole) of a Replicate sent."""
    body = sent.body
    assert isinstance(body, Replicate)
    return sent.dest, body.prev, list(dict.fromkeys(send[2] for send in body.sends)), body.covers, body.whole


@dataclass
class Answer:
    events: list[Event]  # n1's progress is looked at before and after the last
    sent: list[tuple]  # what the last event sent, as summary() gives it
    phase: Phase  # n1's phase afterwards
    match: int  # what n1 holds afterwards, as far as the leader knows
    unchanged: bool = False  # the last event changed nothing of n1's progress
    log: list[int] = field(default_factory=lambda: [1] * START)  # the sizes of the leader's batches, of epoch 1


# n1 answered the probe, then refused the write of 1.0, and was sent a catch-up (whole, covers 4) at 1.1
REFUSED = [ok("n1", START, 0.0), write(1.0), refused("n1", 4, 1.0, at=3, at_epoch=1, now=1.1)]
BIG = [CATCH_UP_MESSAGES * 3 // 4] * 2 + [1]  # batch 3 is past the first CATCH_UP_MESSAGES messages

ANSWERS = {
    "a refusal after the last whole message brings a catch-up from where the logs agree": Answer(
        REFUSED, [("n1", (3, 1), [4], 4, True)], Phase.REPLICATE, START),
    "a refusal whose batch is older brings a catch-up from it": Answer(
        [*REFUSED[:-1], refused("n1", 4, 1.0, at=2, at_epoch=1, now=1.1)], [("n1", (2, 1), [3, 4], 4, True)],
        Phase.REPLICATE, START),
    "a refusal from a longer run of an older epoch brings a catch-up from that epoch's end": Answer(
        [*REFUSED[:-1], refused("n1", 4, 1.0, at=5, at_epoch=1, now=1.1)], [("n1", (3, 1), [4], 4, True)],
        Phase.REPLICATE, START),
    "a refusal of a message sent before the last whole one changes nothing": Answer(
        [*REFUSED, refused("n1", START, 0.0, at=0, at_epoch=0, now=1.2)], [], Phase.REPLICATE, START, unchanged=True),
    "a refusal of the last whole message itself brings another catch-up": Answer(
        [*REFUSED, refused("n1", 4, 1.1, at=2, at_epoch=1, now=1.2)], [("n1", (2, 1), [3, 4], 4, True)],
        Phase.REPLICATE, START),
    "a follower lacking more than a message holds is sent a first part, bringing it up to no commit": Answer(
        [refused("n1", START, 0.0, at=0, at_epoch=0, now=0.1)], [("n1", (0, 0), [1, 2], 0, False)], Phase.CATCH_UP, 0,
        log=BIG),
    "a part's acknowledgement brings the next part, whole": Answer(
        [refused("n1", START, 0.0, at=0, at_epoch=0, now=0.1), ok("n1", 0, 0.1, now=0.2)],
        [("n1", (2, 1), [3], START, True)], Phase.REPLICATE, 0, log=BIG),
    "the last part's acknowledgement brings nothing more": Answer(
        [refused("n1", START, 0.0, at=0, at_epoch=0, now=0.1), ok("n1", 0, 0.1, now=0.2), ok("n1", START, 0.2, now=0.3)],
        [], Phase.REPLICATE, START, log=BIG),
    "an acknowledgement covering nothing out of a catch-up brings nothing": Answer(
        [ok("n1", START, 0.0), ok("n1", 0, 0.0)], [], Phase.REPLICATE, START),
}


@pytest.mark.parametrize("case", ANSWERS.values(), ids=ANSWERS.keys())
def test_a_refusal_or_a_parts_acknowledgement_brings_what_the_follower_lacks(case):
    lead = leading(ALL_IN, log=ListLog(case.log))
    run(lead, case.events[:-1])
    before = dataclasses.replace(lead.progress["n1"])
    sent = case.events[-1](lead)
    assert [summary(message) for message in sent] == case.sent
    progress = lead.progress["n1"]
    assert (progress.phase, progress.match) == (case.phase, case.match)
    if case.unchanged:
        assert progress == before


# --- (7) a catch-up in parts, several in flight ----------------------------------------------------

def part_ok(node: str, through: int, sent: float, now: float) -> Event:
    """`node` took a catch-up part (covers 0) whose last batch is `through`."""
    answer = ReplicateOk(part=PID, epoch=EPOCH, covers=0, file=FILES[node], sent=sent, through=through)
    return lambda lead: lead.answered(node, answer, now)


# Batches of a part's size each: batch b is part b of a catch-up from the empty log; the last
# batch, of one message, comes in the whole message that ends it. (Two parts in flight at least.)
PARTS = [CATCH_UP_MESSAGES] * (CATCH_UP_PARTS + 2) + [1]
LAST = len(PARTS)  # the leader's last batch, and its commits
EMPTY = refused("n1", LAST, 0.0, at=0, at_epoch=0, now=0.1)  # n1 refused the epoch's probe: its log is empty


def part(seq: int) -> tuple:
    """summary() of the part carrying batch `seq` alone."""
    return "n1", (seq - 1, 1 if seq > 1 else 0), [seq], 0, False


@dataclass
class Parts:
    events: list[Event]
    sent: list[tuple]  # what the last event sent, as summary() gives it
    in_flight: list[int]  # the last batch of each part in flight afterwards
    phase: Phase = Phase.CATCH_UP


PIPELINE = {
    "a follower lacking many parts is sent as many as may be in flight, each following the one before": Parts(
        [EMPTY], [part(seq) for seq in range(1, CATCH_UP_PARTS + 1)], list(range(1, CATCH_UP_PARTS + 1))),
    "a part's acknowledgement naming its last batch brings one more": Parts(
        [EMPTY, part_ok("n1", 1, 0.1, now=0.2)], [part(CATCH_UP_PARTS + 1)], list(range(2, CATCH_UP_PARTS + 2))),
    "an acknowledgement through a later part acknowledges every part before it": Parts(
        [EMPTY, part_ok("n1", CATCH_UP_PARTS, 0.1, now=0.2)], [part(CATCH_UP_PARTS + 1), part(CATCH_UP_PARTS + 2)],
        [CATCH_UP_PARTS + 1, CATCH_UP_PARTS + 2]),
    "an acknowledgement that does not name its part (an older follower's) counts for the oldest": Parts(
        [EMPTY, ok("n1", 0, 0.1, now=0.2)], [part(CATCH_UP_PARTS + 1)], list(range(2, CATCH_UP_PARTS + 2))),
    "the last part, whole, waits until every part before it is acknowledged": Parts(
        [EMPTY, part_ok("n1", CATCH_UP_PARTS, 0.1, now=0.2), part_ok("n1", LAST - 2, 0.2, now=0.3)], [],
        [LAST - 1]),
    "then it goes, bringing the follower up to the leader's commit": Parts(
        [EMPTY, part_ok("n1", CATCH_UP_PARTS, 0.1, now=0.2), part_ok("n1", LAST - 1, 0.2, now=0.3)],
        [("n1", (LAST - 1, 1), [LAST], LAST, True)], [], Phase.REPLICATE),
    "an acknowledgement of a part after the whole message brings nothing": Parts(
        [EMPTY, part_ok("n1", CATCH_UP_PARTS, 0.1, now=0.2), part_ok("n1", LAST - 1, 0.2, now=0.3),
         part_ok("n1", 2, 0.1, now=0.4)], [], [], Phase.REPLICATE),
    "a refusal of a part starts the catch-up again from where the logs agree": Parts(
        [EMPTY, refused("n1", 0, 0.1, at=2, at_epoch=1, now=0.2)], [part(seq) for seq in range(3, CATCH_UP_PARTS + 3)],
        list(range(3, CATCH_UP_PARTS + 3))),
    "a refusal of a message sent before the catch-up began changes nothing": Parts(
        [EMPTY, refused("n1", 0, 0.05, at=0, at_epoch=0, now=0.2)], [], list(range(1, CATCH_UP_PARTS + 1))),
    "a refusal of a part sent before the catch-up began again changes nothing": Parts(
        [EMPTY, refused("n1", 0, 0.1, at=2, at_epoch=1, now=0.2), refused("n1", 0, 0.1, at=2, at_epoch=1, now=0.2)],
        [], list(range(3, CATCH_UP_PARTS + 3))),
}


@pytest.mark.parametrize("case", PIPELINE.values(), ids=PIPELINE.keys())
def test_a_catch_up_keeps_parts_in_flight_each_following_the_last_sent(case):
    lead = leading(ALL_IN, log=ListLog(PARTS))
    sent = run(lead, case.events)
    assert [summary(message) for message in sent] == case.sent
    progress = lead.progress["n1"]
    assert (progress.phase, progress.parts if progress.phase is Phase.CATCH_UP else []) == (case.phase, case.in_flight)
    assert progress.match == 0  # parts bring it up to no commit (only the whole message's answer would)
