"""Each change to a partition's leadership (created, shrunk, given_up, grown, elected, resumed, forsaken)
gives exactly the state its rules say from the state it changes, whatever the size of the in-sync set:
a replica that lags leaves the set into the eligible leader replicas (ELR) with its file, until the
leader gives it up; one that lost its file is eligible no more. PartitionState's eligible and holds."""

from __future__ import annotations

import pytest

from kafka_node.replication import membership
from kafka_node.wire.replica import PartitionState

F0, F1, F2, F3 = "file-0", "file-1", "file-2", "file-3"
FILES = {"n0": F0, "n1": F1, "n2": F2}


def S(leader, epoch, isr, version, elr=(), files=None):
    return PartitionState(leader, epoch, list(isr), version, list(elr), dict(files or {}))


def files(*nodes: str) -> dict[str, str]:
    return {node: FILES[node] for node in nodes}


ALL_IN = S("n0", 4, ["n0", "n1", "n2"], 10, [], FILES)
N2_OUT = S("n0", 4, ["n0", "n1"], 10, ["n2"], FILES)  # n2 in the ELR, with its file
ALONE = S("n0", 4, ["n0"], 10, ["n1", "n2"], FILES)  # both others in the ELR, with their files
NEW = S("n0", 4, ["n0"], 10, ["n1", "n2"], files("n0"))  # both others in the ELR without a file (a new partition)
PAIR = S("n0", 4, ["n0", "n1"], 10, [], files("n0", "n1"))  # n2 not eligible

CASES = [
    # --- created ---------------------------------------------------------------------------
    pytest.param(lambda: membership.created("n0", F0, 1, ["n0", "n1", "n2"]),
                 S("n0", 1, ["n0"], 1, ["n1", "n2"], {"n0": F0}),
                 id="created: the creator alone in sync, every other replica eligible without a file"),
    pytest.param(lambda: membership.created("n1", F1, 7, ["n0", "n1", "n2"]),
                 S("n1", 7, ["n1"], 1, ["n0", "n2"], {"n1": F1}),
                 id="created: in the epoch given, led by the creator"),
    pytest.param(lambda: membership.created("n2", F2, 1, ["n3", "n2", "n0", "n1"]),
                 S("n2", 1, ["n2"], 1, ["n0", "n1", "n3"], {"n2": F2}),
                 id="created: as many eligible as there are other replicas"),
    pytest.param(lambda: membership.created("n0", F0, 1, ["n0"]),
                 S("n0", 1, ["n0"], 1, [], {"n0": F0}),
                 id="created: a single replica, nobody else eligible"),
    # --- shrunk ----------------------------------------------------------------------------
    pytest.param(lambda: membership.shrunk(ALL_IN, ["n2"], []),
                 S("n0", 4, ["n0", "n1"], 11, ["n2"], FILES),
                 id="shrunk: a lagging member joins the ELR with its file, though the set stays large"),
    pytest.param(lambda: membership.shrunk(ALL_IN, ["n1", "n2"], []),
                 S("n0", 4, ["n0"], 11, ["n1", "n2"], FILES),
                 id="shrunk: every lagging member joins the ELR with its file"),
    pytest.param(lambda: membership.shrunk(ALL_IN, ["n1"], ["n2"]),
                 S("n0", 4, ["n0"], 11, ["n1"], files("n0", "n1")),
                 id="shrunk: a lost member never joins the ELR, and its file goes"),
    pytest.param(lambda: membership.shrunk(ALL_IN, [], ["n1", "n2"]),
                 S("n0", 4, ["n0"], 11, [], files("n0")),
                 id="shrunk: only lost members, the ELR stays empty"),
    pytest.param(lambda: membership.shrunk(ALL_IN, ["n2"], ["n2"]),
                 S("n0", 4, ["n0", "n1"], 11, [], files("n0", "n1")),
                 id="shrunk: a member both lagging and lost is lost"),
    pytest.param(lambda: membership.shrunk(N2_OUT, ["n1"], []),
                 S("n0", 4, ["n0"], 11, ["n1", "n2"], FILES),
                 id="shrunk: the ELR keeps its members and gains the lagging one"),
    pytest.param(lambda: membership.shrunk(N2_OUT, [], ["n2"]),
                 S("n0", 4, ["n0", "n1"], 11, [], files("n0", "n1")),
                 id="shrunk: an ELR member lost leaves the ELR, and its file goes"),
    pytest.param(lambda: membership.shrunk(S("n0", 4, ["n0", "n1"], 10, ["n2"], files("n0", "n1")), ["n1"], []),
                 S("n0", 4, ["n0"], 11, ["n1", "n2"], files("n0", "n1")),
                 id="shrunk: an ELR member without a file stays without one"),
    # --- given_up --------------------------------------------------------------------------
    pytest.param(lambda: membership.given_up(N2_OUT, ["n2"]),
                 S("n0", 4, ["n0", "n1"], 11, [], files("n0", "n1")),
                 id="given_up: an ELR member given up is eligible no more, and its file goes"),
    pytest.param(lambda: membership.given_up(ALONE, ["n1"]),
                 S("n0", 4, ["n0"], 11, ["n2"], files("n0", "n2")),
                 id="given_up: only the members named leave the ELR"),
    pytest.param(lambda: membership.given_up(ALONE, ["n1", "n2"]),
                 S("n0", 4, ["n0"], 11, [], files("n0")),
                 id="given_up: every member named leaves the ELR"),
    pytest.param(lambda: membership.given_up(NEW, ["n2"]),
                 S("n0", 4, ["n0"], 11, ["n1"], files("n0")),
                 id="given_up: ELR members without a file"),
    pytest.param(lambda: membership.given_up(ALL_IN, ["n1"]),
                 S("n0", 4, ["n0", "n1", "n2"], 11, [], FILES),
                 id="given_up: an in-sync member named stays in the set with its file"),
    pytest.param(lambda: membership.given_up(N2_OUT, []),
                 S("n0", 4, ["n0", "n1"], 11, ["n2"], FILES),
                 id="given_up: nobody named, only the version moves"),
    # --- grown -----------------------------------------------------------------------------
    pytest.param(lambda: membership.grown(ALONE, {"n1": F1}),
                 S("n0", 4, ["n0", "n1"], 11, ["n2"], FILES),
                 id="grown: a joiner leaves the ELR for the set; the rest of the ELR stays, though the set grew"),
    pytest.param(lambda: membership.grown(NEW, {"n1": F1}),
                 S("n0", 4, ["n0", "n1"], 11, ["n2"], files("n0", "n1")),
                 id="grown: a joiner from the ELR without a file brings its file, the others stay without"),
    pytest.param(lambda: membership.grown(ALONE, {"n1": F1, "n2": F2}),
                 S("n0", 4, ["n0", "n1", "n2"], 11, [], FILES),
                 id="grown: every ELR member joining empties the ELR"),
    pytest.param(lambda: membership.grown(PAIR, {"n2": F2}),
                 S("n0", 4, ["n0", "n1", "n2"], 11, [], FILES),
                 id="grown: a replica not eligible joins with its file"),
    pytest.param(lambda: membership.grown(N2_OUT, {"n2": "file-2b"}),
                 S("n0", 4, ["n0", "n1", "n2"], 11, [], {**FILES, "n2": "file-2b"}),
                 id="grown: an ELR member joining from a new file names it"),
    pytest.param(lambda: membership.grown(PAIR, {"n1": "file-1b"}),
                 S("n0", 4, ["n0", "n1"], 11, [], {"n0": F0, "n1": "file-1b"}),
                 id="grown: a member joining again names its new file"),
    # --- elected ---------------------------------------------------------------------------
    pytest.param(lambda: membership.elected(ALL_IN, "n1", F1),
                 S("n1", 5, ["n1", "n2"], 11, ["n0"], FILES),
                 id="elected: the former leader leaves the set into the ELR with its file, however large the set"),
    pytest.param(lambda: membership.elected(PAIR, "n1", F1),
                 S("n1", 5, ["n1"], 11, ["n0"], files("n0", "n1")),
                 id="elected: the new leader alone in sync, the former one in the ELR"),
    pytest.param(lambda: membership.elected(N2_OUT, "n2", F2),
                 S("n2", 5, ["n1", "n2"], 11, ["n0"], FILES),
                 id="elected: an ELR member leads from the set, the former leader takes its place in the ELR"),
    pytest.param(lambda: membership.elected(NEW, "n1", F1),
                 S("n1", 5, ["n1"], 11, ["n0", "n2"], files("n0", "n1")),
                 id="elected: an ELR member without a file leads, with its file; the others stay without"),
    pytest.param(lambda: membership.elected(S(None, 4, ["n1", "n2"], 10, [], files("n1", "n2")), "n1", F1),
                 S("n1", 5, ["n1", "n2"], 11, [], files("n1", "n2")),
                 id="elected: with no former leader, nobody leaves the set"),
    pytest.param(lambda: membership.elected(S("n0", 4, ["n1", "n2"], 10, [], files("n1", "n2")), "n1", F1),
                 S("n1", 5, ["n1", "n2"], 11, [], files("n1", "n2")),
                 id="elected: a former leader out of the set does not join the ELR"),
    # --- resumed ---------------------------------------------------------------------------
    pytest.param(lambda: membership.resumed(ALL_IN, "n0"),
                 S("n0", 5, ["n0", "n1", "n2"], 11, [], FILES),
                 id="resumed: only the epoch moves"),
    pytest.param(lambda: membership.resumed(N2_OUT, "n0"),
                 S("n0", 5, ["n0", "n1"], 11, ["n2"], FILES),
                 id="resumed: the ELR and its files are kept"),
    pytest.param(lambda: membership.resumed(NEW, "n0"),
                 S("n0", 5, ["n0"], 11, ["n1", "n2"], files("n0")),
                 id="resumed: ELR members without a file stay without one"),
    # --- forsaken --------------------------------------------------------------------------
    pytest.param(lambda: membership.forsaken(ALL_IN, "n0"),
                 S(None, 4, ["n1", "n2"], 11, [], files("n1", "n2")),
                 id="forsaken: the leader that lost its file leaves the lead, the set and its file"),
    pytest.param(lambda: membership.forsaken(ALL_IN, "n2"),
                 S("n0", 4, ["n0", "n1"], 11, [], files("n0", "n1")),
                 id="forsaken: a follower leaves the set, the leader stays"),
    pytest.param(lambda: membership.forsaken(PAIR, "n1"),
                 S("n0", 4, ["n0"], 11, [], files("n0")),
                 id="forsaken: a member never joins the ELR as it leaves the set"),
    pytest.param(lambda: membership.forsaken(ALONE, "n1"),
                 S("n0", 4, ["n0"], 11, ["n2"], files("n0", "n2")),
                 id="forsaken: an ELR member leaves the ELR and its file goes"),
    pytest.param(lambda: membership.forsaken(NEW, "n2"),
                 S("n0", 4, ["n0"], 11, ["n1"], files("n0")),
                 id="forsaken: an ELR member without a file leaves the ELR"),
    pytest.param(lambda: membership.forsaken(S("n0", 4, ["n0"], 10, [], files("n0")), "n0"),
                 S(None, 4, [], 11, [], {}),
                 id="forsaken: the sole member leaves nobody"),
]


@pytest.mark.parametrize(("change", "expected"), CASES)
def test_each_change_gives_exactly_the_state_its_rules_say(change, expected):
    assert change() == expected


CHANGES = {
    "shrunk lagging": lambda state: membership.shrunk(state, ["n1"], []),
    "shrunk lost": lambda state: membership.shrunk(state, [], ["n1"]),
    "given_up": lambda state: membership.given_up(state, ["n2", "n3"]),
    "grown": lambda state: membership.grown(state, {"n2": F2}),
    "elected": lambda state: membership.elected(state, "n1", F1),
    "resumed": lambda state: membership.resumed(state, "n0"),
    "forsaken": lambda state: membership.forsaken(state, "n1"),
}

#: States each change starts from, the last two not made by any change: the ELR overlapping the set,
#: files named for replicas neither in the set nor in the ELR.
STARTS = {
    "all in sync": ALL_IN,
    "one in the ELR": N2_OUT,
    "ELR without files": NEW,
    "n2 not eligible": PAIR,
    "ELR overlapping the set": S("n0", 4, ["n0", "n1"], 10, ["n1", "n2"], FILES),
    "files of replicas not eligible": S("n0", 4, ["n0", "n1"], 10, ["n2"], {**FILES, "n3": F3}),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
@pytest.mark.parametrize("start", STARTS.values(), ids=STARTS.keys())
@pytest.mark.parametrize("version", [1, 2, 41])
def test_every_change_moves_the_version_by_exactly_one(change, start, version):
    state = PartitionState(start.leader, start.epoch, start.isr, version, start.elr, start.files)
    assert change(state).version == version + 1


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
@pytest.mark.parametrize("start", STARTS.values(), ids=STARTS.keys())
def test_no_change_leaves_an_in_sync_member_in_the_elr_or_a_file_for_a_replica_not_eligible(change, start):
    state = change(start)
    assert not set(state.elr) & set(state.isr)
    assert set(state.files) <= set(state.eligible)


@pytest.mark.parametrize(("state", "eligible"), [
    (S("n0", 1, ["n0", "n1"], 1), ["n0", "n1"]),
    (S("n0", 1, ["n0"], 1, ["n2", "n1"]), ["n0", "n2", "n1"]),
    (S("n0", 1, ["n0", "n1"], 1, ["n1", "n2"]), ["n0", "n1", "n2"]),
    (S(None, 1, [], 1), []),
])
def test_eligible_is_the_in_sync_set_then_the_elr_without_repeats(state, eligible):
    assert state.eligible == eligible


HOLDING = S("n0", 3, ["n0", "n1"], 5, ["n2", "n3"], {"n0": F0, "n1": F1, "n2": F2})


@pytest.mark.parametrize(("node", "file", "holds"), [
    ("n0", F0, True),
    ("n1", F1, True),
    ("n1", "file-new", False),  # lost what it held
    ("n2", F2, True),  # ELR member with its file
    ("n2", F0, False),
    ("n3", "any-file", True),  # ELR member without a file: any file holds everything acknowledged
    ("n4", "file-4", False),  # not eligible
    ("n4", F0, False),
])
def test_holds_only_for_an_eligible_replica_with_the_file_named_or_none_named(node, file, holds):
    assert HOLDING.holds(node, file) is holds
