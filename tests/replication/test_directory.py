"""Directory keeps each partition's leader as last known, newest first (lin-kv's states by version,
replicas' views by epoch), and lists the leads that moved away from a node once each."""

from __future__ import annotations

import pytest

from kafka_node.replication import membership
from kafka_node.replication.directory import Directory
from kafka_node.wire.replica import PartitionState


def S(leader, epoch, version, isr=("n0", "n1")):
    return PartitionState(leader, epoch, list(isr), version)


def test_an_unknown_partition_has_no_leader_state_or_moves():
    directory = Directory()
    assert directory.leader(4) is None
    assert directory.state(4) is None
    assert directory.take_moves() == []


@pytest.mark.parametrize(("first", "second", "taken"), [
    (S("n0", 1, 1), S("n1", 2, 2), True),
    (S("n0", 1, 1), S("n0", 1, 2, isr=["n0"]), True),
    (S("n1", 2, 2), S("n0", 1, 1), False),  # older
    (S("n1", 2, 2), S("n0", 3, 2), False),  # same version: the first one read stands
])
def test_learned_takes_a_state_only_if_its_version_is_newer(first, second, taken):
    directory = Directory()
    assert directory.learned(0, first)
    assert directory.learned(0, second) is taken
    newest = second if taken else first
    assert directory.state(0) == newest
    assert directory.leader(0) == newest.leader


def test_a_newer_state_whose_leader_forsook_the_lead_leaves_the_partition_without_a_known_leader():
    directory = Directory()
    led = S("n0", 4, 7)
    forsaken = membership.forsaken(led, "n0")
    assert directory.learned(0, led)
    assert directory.learned(0, forsaken)
    assert directory.state(0) == forsaken
    assert directory.leader(0) == directory.state(0).leader


@pytest.mark.parametrize(("views", "leader", "moves"), [
    ([("n0", 1)], "n0", []),
    ([("n0", 1), ("n1", 2)], "n1", [("n0", 0)]),
    ([("n0", 2), ("n1", 1)], "n0", []),  # an older epoch changes nothing
    ([("n0", 2), ("n0", 2)], "n0", []),
    ([("n0", 2), (None, 3)], None, [("n0", 0)]),
    ([("n0", 2), (None, 3), ("n1", 3)], "n1", [("n0", 0)]),
    ([("n0", 1), ("n1", 2), ("n0", 3)], "n0", [("n0", 0), ("n1", 0)]),
])
def test_led_keeps_the_newest_epochs_leader_and_notes_each_lead_that_moved_away(views, leader, moves):
    directory = Directory()
    for who, epoch in views:
        directory.led(0, who, epoch)
    assert directory.leader(0) == leader
    assert directory.take_moves() == moves
    assert directory.take_moves() == []


def test_partitions_are_kept_apart():
    directory = Directory()
    directory.led(0, "n0", 1)
    directory.learned(1, S("n2", 5, 3))
    directory.led(0, "n1", 2)
    assert (directory.leader(0), directory.leader(1)) == ("n1", "n2")
    assert directory.state(0) is None
    assert directory.take_moves() == [("n0", 0)]
