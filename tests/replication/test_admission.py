"""WaitingRoom keeps a client's request waiting leader_wait from when it first came and a forwarded one
peer_wait, hands them back to be tried at each tick, and forgets the deadline of one that no longer waits."""

from __future__ import annotations

import pytest

from kafka_node.replication.admission import WaitingRoom

LEADER_WAIT = 1.0
PEER_WAIT = 0.4


class Request:
    """A request, known by identity as the room knows it."""


def room() -> WaitingRoom[Request]:
    return WaitingRoom(LEADER_WAIT, PEER_WAIT)


@pytest.mark.parametrize(("forwarded", "later", "waits"), [
    (False, 0.0, True),
    (False, 0.39, True),
    (False, 0.41, True),
    (False, 0.99, True),
    (False, 1.0, False),
    (False, 1.5, False),
    (True, 0.0, True),
    (True, 0.39, True),
    (True, 0.4, False),
    (True, 0.99, False),
])
def test_a_client_request_waits_leader_wait_and_a_forwarded_one_peer_wait(forwarded, later, waits):
    waiting = room()
    request = Request()
    assert waiting.wait(request, 10.0, forwarded=forwarded)
    assert waiting.take() == [request]
    assert waiting.wait(request, 10.0 + later, forwarded=forwarded) is waits
    assert waiting.take() == ([request] if waits else [])


def test_the_deadline_counts_from_when_the_request_first_came_not_from_each_try():
    waiting = room()
    request = Request()
    assert waiting.wait(request, 0.0)
    for now in (0.3, 0.6, 0.9):  # each tick: taken, refused again, waits again
        taken = waiting.take()
        assert waiting.wait(request, now)
        waiting.tried(taken)
    taken = waiting.take()
    assert not waiting.wait(request, 1.0)
    waiting.tried(taken)
    assert len(waiting) == 0


def test_take_hands_back_every_waiting_request_once_in_order():
    waiting = room()
    first, second = Request(), Request()
    waiting.wait(first, 0.0)
    waiting.wait(second, 0.1, forwarded=True)
    assert len(waiting) == 2
    assert waiting.take() == [first, second]
    assert len(waiting) == 0
    assert waiting.take() == []


def test_tried_forgets_a_request_no_longer_waiting_so_it_waits_afresh_if_it_comes_again():
    waiting = room()
    request = Request()
    waiting.wait(request, 0.0)
    waiting.tried(waiting.take())  # taken this time: it waits no more
    assert waiting.wait(request, 5.0)  # a new wait, from 5.0
    assert waiting.take() == [request]
    assert waiting.wait(request, 5.9)
    waiting.take()
    assert not waiting.wait(request, 6.0)


def test_tried_keeps_the_deadline_of_a_request_that_waits_again():
    waiting = room()
    kept, taken = Request(), Request()
    waiting.wait(kept, 0.0)
    waiting.wait(taken, 0.0)
    tried = waiting.take()
    assert waiting.wait(kept, 0.5)  # still refused: waits again
    waiting.tried(tried)
    assert waiting.take() == [kept]
    assert not waiting.wait(kept, 1.0)  # its deadline is still 1.0
    assert waiting.wait(taken, 1.0)  # forgotten: a fresh wait


def test_a_request_whose_time_is_up_is_forgotten():
    waiting = room()
    request = Request()
    waiting.wait(request, 0.0)
    waiting.take()
    assert not waiting.wait(request, 2.0)
    assert len(waiting) == 0
    assert waiting.wait(request, 3.0)  # as if it came for the first time
