"""Timing's defaults break none of the relations R1-R11, each relation broken on purpose is named in
violations() with its reason, and failed_memory and peer_wait follow from the timeouts they derive from."""

from __future__ import annotations

import dataclasses

import pytest

from kafka_node.replication.timing import Timing


def broken(timing: Timing) -> set[str]:
    return {violation.split(":", 1)[0] for violation in timing.violations()}


def test_the_defaults_break_no_relation():
    assert Timing().violations() == []


@pytest.mark.parametrize(("override", "rules"), [
    ({"tick": 0.06}, {"R1"}),  # 0.12 > heartbeat 0.1
    ({"heartbeat": 0.2}, {"R2", "R3"}),  # 0.6 > lag 0.5, 0.6 > lease 0.5
    ({"lag": 0.25}, {"R2"}),
    ({"lease": 0.25}, {"R3"}),
    ({"election": 0.5}, {"R4"}),  # lease 0.5 is not shorter
    ({"lease": 0.6}, {"R4"}),
    ({"leader_wait": 0.8}, {"R5"}),  # election 0.6 + kv_retry 0.25 = 0.85
    ({"kv_retry": 0.5}, {"R5"}),
    ({"kv_timeout": 2.1}, {"R6"}),  # lag 0.5 + 2.1 > replication 2.5
    ({"replication": 3.0}, {"R7"}),  # not shorter than forward 3
    ({"busy": 3.0}, {"R8"}),
    ({"forward": 5.0}, {"R8", "R9"}),  # not shorter than client 5; leader_wait 1 + 5 > 5
    ({"leader_wait": 2.0}, {"R9"}),  # 2 + forward 3 = client 5
    ({"replication": 3.5}, {"R7", "R10"}),  # peer_wait clipped to 0: 0 + 3.5 > forward 3
    ({"rebalance": 0.5}, {"R11"}),  # not longer than lag 0.5
], ids=lambda value: ",".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else "+".join(sorted(value)))
def test_an_override_breaking_a_relation_is_named_with_its_reason(override, rules):
    timing = Timing(**override)
    assert broken(timing) == rules
    for violation in timing.violations():
        _, reason = violation.split(":", 1)
        assert len(reason.strip()) > 20, violation


def test_every_relation_r1_to_r11_can_be_named():
    assert set().union(*[broken(Timing(**override)) for override in [
        {"tick": 0.06}, {"heartbeat": 0.2}, {"election": 0.5}, {"leader_wait": 0.8}, {"kv_timeout": 2.1},
        {"busy": 3.0}, {"leader_wait": 2.0}, {"replication": 3.5}, {"rebalance": 0.5},
    ]]) == {f"R{n}" for n in range(1, 12)}


@pytest.mark.parametrize(("override", "failed_memory", "peer_wait"), [
    ({}, 4.0, 0.45),
    ({"forward": 4.0}, 5.0, 1.45),
    ({"forward": 4.0, "replication": 2.0, "tick": 0.1}, 5.0, 1.9),
    ({"replication": 2.95}, 4.0, 0.0),
    ({"replication": 3.5}, 4.0, 0.0),  # never negative
])
def test_failed_memory_and_peer_wait_are_derived_from_forward_replication_and_tick(override, failed_memory, peer_wait):
    timing = Timing(**override)
    assert timing.failed_memory == pytest.approx(failed_memory)
    assert timing.peer_wait == pytest.approx(peer_wait)


def test_derived_timeouts_cannot_be_set_and_follow_a_replaced_value():
    with pytest.raises(TypeError):
        Timing(peer_wait=1.0)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Timing(failed_memory=1.0)  # type: ignore[call-arg]
    replaced = dataclasses.replace(Timing(), forward=4.5)
    assert (replaced.failed_memory, replaced.peer_wait) == (pytest.approx(5.5), pytest.approx(1.95))
