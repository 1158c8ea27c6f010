"""Each change to a partition's leadership (created, shrunk, grown, elected, resumed, forsaken) gives
exactly the state its rules say from the state it changes; PartitionState's eligible and holds."""

from __future__ import annotations

import pytest

from kafka_node.replication import membership
from kafka_node.wire.replica import PartitionState

F0, F1, F2 = "file-0", "file-1", "file-2"
FILES = {"n0": F0, "n1": F1, "n2": F2}


def S(leader, epoch, isr, version, elr=(), files=None):
    return PartitionState(leader, epoch, list(isr), version, list(elr), dict(files or {}))


ALL_IN = S("n0", 4, ["n0", "n1", "n2"], 10, [], FILES)

CASES = [
    # --- created ---------------------------------------------------------------------------
    pytest.param(lambda: membership.created("n0", F0, 1, ["n0", "n1", "n2"], 2),
                 S("n0", 1, ["n0"], 1, ["n1", "n2"], {"n0": F0}),
                 id="created: below min-insync, the others are eligible without a file"),
    pytest.param(lambda: membership.created("n1", F1, 7, ["n0", "n1", "n2"], 3),
                 S("n1", 7, ["n1"], 1, ["n0", "n2"], {"n1": F1}),
                 id="created: in the epoch given, led by the creator"),
    pytest.param(lambda: membership.created("n0", F0, 1, ["n0", "n1", "n2"], 1),
                 S("n0", 1, ["n0"], 1, [], {"n0": F0}),
                 id="created: min-insync 1, nobody else eligible"),
    pytest.param(lambda: membership.created("n0", F0, 1, ["n0"], 2),
                 S("n0", 1, ["n0"], 1, [], {"n0": F0}),
                 id="created: a single replica"),
    # --- shrunk ----------------------------------------------------------------------------
    pytest.param(lambda: membership.shrunk(ALL_IN, ["n2"], [], 2),
                 S("n0", 4, ["n0", "n1"], 11, [], {"n0": F0, "n1": F1}),
                 id="shrunk: still at min-insync, the lagging one is not eligible and its file goes"),
    pytest.param(lambda: membership.shrunk(ALL_IN, ["n1", "n2"], [], 2),
                 S("n0", 4, ["n0"], 11, ["n1", "n2"], FILES),
                 id="shrunk: below min-insync, the lagging ones join the ELR with their files"),
    pytest.param(lambda: membership.shrunk(ALL_IN, ["n1"], ["n2"], 2),
                 S("n0", 4, ["n0"], 11, ["n1"], {"n0": F0, "n1": F1}),
                 id="shrunk: a lost one never joins the ELR, and loses its file"),
    pytest.param(lambda: membership.shrunk(ALL_IN, [], ["n1", "n2"], 3),
                 S("n0", 4, ["n0"], 11, [], {"n0": F0}),
                 id="shrunk: only lost ones, the ELR stays empty"),
    pytest.param(lambda: membership.shrunk(S("n0", 4, ["n0", "n1"], 10, ["n2"], FILES), ["n1"], [], 3),
                 S("n0", 4, ["n0"], 11, ["n1", "n2"], FILES),
                 id="shrunk: below min-insync, the ELR keeps its members and gains the lagging one"),
    pytest.param(lambda: membership.shrunk(S("n0", 4, ["n0", "n1"], 10, ["n2"], FILES), [], ["n2"], 3),
                 S("n0", 4, ["n0", "n1"], 11, [], {"n0": F0, "n1": F1}),
                 id="shrunk: an ELR member lost leaves the ELR"),
    # --- grown -----------------------------------------------------------------------------
    pytest.param(lambda: membership.grown(S("n0", 4, ["n0"], 10, ["n1", "n2"], FILES), {"n1": F1}, 2),
                 S("n0", 4, ["n0", "n1"], 11, [], {"n0": F0, "n1": F1}),
                 id="grown: at min-insync, the ELR is cleared and its files dropped"),
    pytest.param(lambda: membership.grown(S("n0", 4, ["n0"], 10, ["n1", "n2"], {"n0": F0}), {"n1": F1}, 3),
                 S("n0", 4, ["n0", "n1"], 11, ["n2"], {"n0": F0, "n1": F1}),
                 id="grown: still below min-insync, the joiner leaves the ELR with its file, the rest stay"),
    pytest.param(lambda: membership.grown(S("n0", 4, ["n0", "n1"], 10, [], {"n0": F0, "n1": F1}), {"n2": F2}, 2),
                 S("n0", 4, ["n0", "n1", "n2"], 11, [], FILES),
                 id="grown: a joiner brings its file"),
    pytest.param(lambda: membership.grown(S("n0", 4, ["n0", "n1"], 10, [], {"n0": F0, "n1": F1}), {"n1": "file-1b"}, 2),
                 S("n0", 4, ["n0", "n1"], 11, [], {"n0": F0, "n1": "file-1b"}),
                 id="grown: a member joining again names its new file"),
    # --- elected ---------------------------------------------------------------------------
    pytest.param(lambda: membership.elected(ALL_IN, "n1", F1, 2),
                 S("n1", 5, ["n1", "n2"], 11, [], {"n1": F1, "n2": F2}),
                 id="elected: the former leader leaves the set, not eligible while it is large enough"),
    pytest.param(lambda: membership.elected(S("n0", 4, ["n0", "n1"], 10, [], {"n0": F0, "n1": F1}), "n1", F1, 2),
                 S("n1", 5, ["n1"], 11, ["n0"], {"n0": F0, "n1": F1}),
                 id="elected: the set then below min-insync, the former leader joins the ELR"),
    pytest.param(lambda: membership.elected(S("n0", 4, ["n0"], 10, ["n1", "n2"], {"n0": F0}), "n1", F1, 2),
                 S("n1", 5, ["n1"], 11, ["n0", "n2"], {"n0": F0, "n1": F1}),
                 id="elected: an ELR member without a file leads, with its file"),
    pytest.param(lambda: membership.elected(S(None, 4, ["n1", "n2"], 10, [], {"n1": F1, "n2": F2}), "n1", F1, 2),
                 S("n1", 5, ["n1", "n2"], 11, [], {"n1": F1, "n2": F2}),
                 id="elected: with no former leader, nobody leaves"),
    pytest.param(lambda: membership.elected(S("n0", 4, ["n1", "n2"], 10, [], {"n1": F1, "n2": F2}), "n1", F1, 3),
                 S("n1", 5, ["n1", "n2"], 11, [], {"n1": F1, "n2": F2}),
                 id="elected: a former leader out of the set does not join the ELR"),
    # --- resumed ---------------------------------------------------------------------------
    pytest.param(lambda: membership.resumed(ALL_IN, "n0", 2),
                 S("n0", 5, ["n0", "n1", "n2"], 11, [], FILES),
                 id="resumed: only the epoch moves"),
    pytest.param(lambda: membership.resumed(S("n0", 4, ["n0"], 10, ["n1"], {"n0": F0, "n1": F1}), "n0", 2),
                 S("n0", 5, ["n0"], 11, ["n1"], {"n0": F0, "n1": F1}),
                 id="resumed: the ELR is kept"),
    # --- forsaken --------------------------------------------------------------------------
    pytest.param(lambda: membership.forsaken(ALL_IN, "n0", 2),
                 S(None, 4, ["n1", "n2"], 11, [], {"n1": F1, "n2": F2}),
                 id="forsaken: the leader that lost its file leaves the lead"),
    pytest.param(lambda: membership.forsaken(ALL_IN, "n2", 2),
                 S("n0", 4, ["n0", "n1"], 11, [], {"n0": F0, "n1": F1}),
                 id="forsaken: a follower leaves the set, the leader stays"),
    pytest.param(lambda: membership.forsaken(S("n0", 4, ["n0"], 10, ["n1", "n2"], FILES), "n1", 2),
                 S("n0", 4, ["n0"], 11, ["n2"], {"n0": F0, "n2": F2}),
                 id="forsaken: an ELR member leaves the ELR and its file goes"),
    pytest.param(lambda: membership.forsaken(S("n0", 4, ["n0", "n1"], 10, [], {"n0": F0, "n1": F1}), "n1", 3),
                 S("n0", 4, ["n0"], 11, [], {"n0": F0}),
                 id="forsaken: never joins the ELR though the set falls below min-insync"),
    pytest.param(lambda: membership.forsaken(S("n0", 4, ["n0"], 10, [], {"n0": F0}), "n0", 2),
                 S(None, 4, [], 11, [], {}),
                 id="forsaken: the sole member leaves nobody"),
]


@pytest.mark.parametrize(("change", "expected"), CASES)
def test_each_change_gives_exactly_the_state_its_rules_say(change, expected):
    assert change() == expected


CHANGES = {
    "shrunk": lambda state: membership.shrunk(state, ["n1"], [], 2),
    "grown": lambda state: membership.grown(state, {"n2": F2}, 2),
    "elected": lambda state: membership.elected(state, "n1", F1, 2),
    "resumed": lambda state: membership.resumed(state, "n0", 2),
    "forsaken": lambda state: membership.forsaken(state, "n1", 2),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
@pytest.mark.parametrize("version", [1, 2, 41])
def test_every_change_moves_the_version_by_exactly_one(change, version):
    state = S("n0", 4, ["n0", "n1"], version, ["n2"], FILES)
    assert change(state).version == version + 1


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
