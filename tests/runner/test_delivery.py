"""Delivery as Maelstrom's net.clj does it, on small cases with a clock the test moves: each
destination's queue taken earliest deadline first, one message at a time, a cut link checked
as a message is taken; and Maelstrom's latency draws."""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable

import msgspec
import pytest

from kafka_node.maelstrom.delivery import DeliveryQueue, DeliveryStats, Parcel
from kafka_node.maelstrom.latency import LatencyDistribution
from kafka_node.maelstrom.network import Envelope, Head, Network


class ManualTimer:
    """A clock that moves only when the test says, firing what falls due in order."""

    def __init__(self) -> None:
        self.time = 0.0
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self.time

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self._due, (self.time + delay, next(self._order), callback))

    def advance_to(self, moment: float) -> None:
        while self._due and self._due[0][0] <= moment:
            when, _, callback = heapq.heappop(self._due)
            self.time = when
            callback()
        self.time = moment


class Links:
    """Queues for a few destinations, with a grudge the test sets, recording what arrives."""

    def __init__(self) -> None:
        self.timer = ManualTimer()
        self.grudge: dict[str, set[str]] = {}
        self.stats = DeliveryStats()
        self.arrived: list[tuple[float, str]] = []
        self.dropped: list[str] = []
        self.queues: dict[str, DeliveryQueue] = {}

    def send(self, name: str, src: str, dest: str, latency_ms: float) -> None:
        queue = self.queues.setdefault(dest, DeliveryQueue(
            self.timer, lambda s, d: s in self.grudge.get(d, set()), self.stats))

        def deliver() -> None:
            self.arrived.append((round(self.timer.now(), 6), name))

        queue.put(Parcel(src, dest, self.timer.now() + latency_ms / 1000, deliver, lambda: self.dropped.append(name),
                         between_servers=not src.startswith("c"), number=self.stats.number(src, dest)))

    def names(self) -> list[str]:
        return [name for _, name in self.arrived]


def test_a_long_draw_holds_back_a_later_short_one_to_the_same_destination_but_not_to_another():
    links = Links()
    links.send("slow", "n0", "n1", 30)
    links.timer.advance_to(0.001)
    links.send("quick", "n0", "n1", 2)  # due at 3 ms, queued behind the one taken (due at 30 ms)
    links.send("elsewhere", "n0", "n2", 2)
    links.timer.advance_to(0.010)
    assert links.names() == ["elsewhere"], "n2's queue has its own receiver"
    links.timer.advance_to(0.040)
    assert links.names() == ["elsewhere", "slow", "quick"], "the short draw waited for the long one"
    assert links.stats.overtaken == 0


def test_a_client_request_waits_behind_the_draw_being_slept_on():
    links = Links()
    links.send("gossip", "n0", "n1", 20)
    links.send("request", "c1", "n1", 0)  # a client's request is due at once, but the receiver is asleep
    links.timer.advance_to(0.030)
    assert links.names() == ["gossip", "request"]
    described = links.stats.described()["client_requests_held"]
    assert described["count"] == 1 and described["held"] == 1 and described["max"] >= 19


def test_messages_queued_together_leave_in_deadline_order_so_a_later_one_can_overtake():
    links = Links()
    links.send("blocker", "n2", "n1", 10)  # keeps n1's receiver asleep while two more queue up
    links.send("first", "n0", "n1", 8)
    links.send("second", "n0", "n1", 3)
    links.timer.advance_to(0.050)
    assert links.names() == ["blocker", "second", "first"]
    assert links.stats.overtaken == 1 and links.stats.delivered_between_servers == 3


def test_a_wait_is_slept_in_whole_milliseconds_as_thread_sleep_of_a_long():
    links = Links()
    links.timer.advance_to(0.0004)
    links.send("m", "n0", "n1", 5)  # due at 5.4 ms; taken at once, 5 ms to go: sleeps 5 ms
    links.timer.advance_to(0.0053)
    assert links.names() == []
    links.timer.advance_to(0.0060)
    assert links.arrived == [(0.0054, "m")]
    links.send("sub-millisecond", "n0", "n1", 0.9)  # less than a whole millisecond to wait: none
    assert links.names()[-1] == "sub-millisecond"


def test_a_message_still_queued_when_a_partition_starts_is_dropped():
    links = Links()
    links.send("blocker", "n2", "n1", 20)
    links.send("in flight", "n0", "n1", 5)  # queued behind the blocker
    links.timer.advance_to(0.010)
    links.grudge = {"n1": {"n0"}}  # the partition starts while it waits in the queue
    links.timer.advance_to(0.050)
    assert links.names() == ["blocker"] and links.dropped == ["in flight"]
    assert links.stats.dropped_when_taken == 1


def test_a_message_already_taken_when_a_partition_starts_is_delivered_as_net_clj_does():
    # recv! checks the partition when it takes the message, before it sleeps to the deadline.
    links = Links()
    links.send("taken", "n0", "n1", 20)
    links.timer.advance_to(0.005)
    links.grudge = {"n1": {"n0"}}
    links.timer.advance_to(0.050)
    assert links.names() == ["taken"] and links.dropped == []


def test_a_message_sent_during_a_partition_and_taken_after_the_heal_is_delivered():
    links = Links()
    links.send("blocker", "n2", "n1", 30)
    links.grudge = {"n1": {"n0"}}
    links.send("across the heal", "n0", "n1", 1)  # sent while n1 drops n0's messages
    links.timer.advance_to(0.015)
    links.grudge = {}  # healed before n1's receiver takes it
    links.timer.advance_to(0.050)
    assert links.names() == ["blocker", "across the heal"] and links.dropped == []


def test_a_message_sent_and_taken_during_a_partition_is_dropped():
    links = Links()
    links.grudge = {"n1": {"n0"}}
    links.send("cut", "n0", "n1", 5)
    links.send("other way", "n1", "n0", 5)  # a grudge is one way
    links.timer.advance_to(0.050)
    assert links.dropped == ["cut"] and links.names() == ["other way"]


class Recorder:
    """A service that records what reaches it and answers nothing."""

    def __init__(self, timer: ManualTimer) -> None:
        self.timer = timer
        self.seen: list[tuple[float, str, int]] = []

    def handle(self, src: str, body: dict) -> None:
        self.seen.append((round(self.timer.now(), 6), src, body["n"]))


class Scripted(random.Random):
    """Exponential draws the test chooses, in order."""

    def __init__(self, draws_ms: list[float]) -> None:
        super().__init__(0)
        self.draws = iter(draws_ms)

    def expovariate(self, lambd: float) -> float:
        return next(self.draws)


def test_the_network_queues_each_destination_with_its_own_draws():
    timer = ManualTimer()
    latency = LatencyDistribution("exponential", 5, Scripted([40.7, 3.2, 1.9]))
    lin_kv, seq_kv = Recorder(timer), Recorder(timer)
    net = Network(latency=latency, services={"lin-kv": lin_kv, "seq-kv": seq_kv}, clock=timer.now, timer=timer)
    for n, dest in enumerate(("lin-kv", "lin-kv", "seq-kv")):
        body = msgspec.json.encode({"type": "read", "n": n})
        net.route("n0", Envelope("n0", dest, msgspec.Raw(body)), Head("read"), body + b"\n")
    timer.advance_to(0.100)
    assert seq_kv.seen == [(0.001, "n0", 2)], "1.9 ms is cut to 1"
    assert lin_kv.seen == [(0.04, "n0", 0), (0.04, "n0", 1)], "the 3 ms draw waited behind the 40 ms one"
    assert net.latency.described() == {"dist": "exponential", "mean_ms": 5, "draws": 3, "draw_mean_ms": 14.667,
                                       "draw_max_ms": 40}


@pytest.mark.parametrize("kind", ["uniform", "exponential"])
def test_draws_have_maelstroms_shape_and_repeat_with_the_seed(kind):
    first = LatencyDistribution(kind, 5, random.Random(7))
    values = [first.draw_ms() for _ in range(20000)]
    again = LatencyDistribution(kind, 5, random.Random(7))
    assert [again.draw_ms() for _ in range(20000)] == values
    assert all(isinstance(v, int) and v >= 0 for v in values)
    mean = sum(values) / len(values)
    if kind == "uniform":
        assert set(values) == set(range(10)), "incanter's integer-distribution 0 10: 0 to 9"
    else:
        assert max(values) > 25, "a long tail"
    assert 4.3 < mean < 4.7, "whole milliseconds: the mean of the draws is about half a millisecond under 5"


def test_a_constant_latency_is_the_mean_and_a_zero_mean_draws_only_constantly():
    constant = LatencyDistribution("constant", 5, random.Random(0))
    assert {constant.draw_ms() for _ in range(10)} == {5}
    assert LatencyDistribution("constant", 0, random.Random(0)).draw_ms() == 0
    for kind in ("uniform", "exponential"):
        with pytest.raises(ValueError, match="above 0"):
            LatencyDistribution(kind, 0, random.Random(0))
