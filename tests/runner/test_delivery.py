"""Delivery as Maelstrom's net.clj does it, on small cases with a clock the test moves: each
destination's queue taken earliest deadline first, one message at a time, a cut link checked
as a message is taken, a full receiver waited for; and Maelstrom's latency draws."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import os
import random
import signal
from collections.abc import Callable

import msgspec
import pytest

from kafka_node.maelstrom.delivery import DeliveryQueue, DeliveryStats, Parcel
from kafka_node.maelstrom.latency import LatencyDistribution
from kafka_node.maelstrom.network import Envelope, Head, Network, RpcTimeout
from kafka_node.maelstrom.process import NodeProcess


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

        def deliver() -> bool:
            self.arrived.append((round(self.timer.now(), 6), name))
            return True

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


class Full:
    """A receiver that cannot take more yet: the queue waits until the test lets it go on."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[object], None]] = []

    def add_done_callback(self, callback: Callable[[object], None]) -> None:
        self.callbacks.append(callback)

    def empties(self) -> None:
        for callback in self.callbacks:
            callback(self)


def test_a_full_receiver_holds_the_queue_until_it_has_read_and_nothing_undelivered_is_counted():
    timer, stats = ManualTimer(), DeliveryStats()
    queue = DeliveryQueue(timer, lambda src, dest: False, stats)
    full, handed = Full(), []

    def parcel(name: str, result: object) -> Parcel:
        def deliver() -> object:
            handed.append(name)
            return result
        return Parcel("n0", "n1", timer.now(), deliver, lambda: None, number=stats.number("n0", "n1"))  # type: ignore[arg-type]

    queue.put(parcel("fills the pipe", full))
    queue.put(parcel("waits", True))
    assert handed == ["fills the pipe"], "a writer to a full pipe waits there"
    full.empties()
    assert handed == ["fills the pipe", "waits"]
    queue.put(parcel("to a node that is down", False))
    assert stats.delivered_between_servers == 2, "a message that reached no receiver is not counted as delivered"


#: A node that never reads its stdin (as if paused), and leaves behind, in a session of its own
#: that a kill does not reach, a process holding its stdin open.
UNREAD = "exec 3<&0; setsid sleep 30 <&3 >/dev/null 2>&1 & echo $! > holder.pid; exec sleep 60"


def test_a_node_that_does_not_read_holds_its_writer_until_it_is_killed(tmp_path):
    async def scenario() -> tuple[bool, bool]:
        node = NodeProcess(["sh", "-c", UNREAD], str(tmp_path), tmp_path / "node.log")
        await node.start()
        chunk = b"x" * 4095 + b"\n"
        room = None
        for _ in range(4096):  # 16 MiB: more than any pipe holds
            node.write(chunk)
            if (room := node.waiting_room()) is not None:
                break
        assert room is not None, "a full pipe asks its writer to wait"
        await asyncio.sleep(0.05)
        waiting = not room.done()
        await node.kill()
        await asyncio.wait_for(room, 2)  # the kill lets a waiting writer go on, whoever else holds the pipe
        return waiting, room.done()
    try:
        assert asyncio.run(scenario()) == (True, True)
    finally:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((tmp_path / "holder.pid").read_text()), signal.SIGKILL)


def test_what_is_queued_for_a_node_when_it_is_killed_is_dropped_not_delivered(tmp_path):
    async def scenario() -> Network:
        timer = ManualTimer()
        net = Network(timeout=0.3, latency=LatencyDistribution("exponential", 5, Scripted([30.0])),
                      services={}, clock=timer.now, timer=timer)
        node = NodeProcess(["sh", "-c", "cat > /dev/null"], str(tmp_path), tmp_path / "node.log")
        await node.start()
        net.add_node("n0")
        net.attach("n0", node)
        net.up("n0")
        gossip = msgspec.json.encode({"type": "gossip"})
        net.route("n1", Envelope("n1", "n0", msgspec.Raw(gossip)), Head("gossip"), gossip + b"\n")  # 30 ms
        request = asyncio.create_task(net.call("c1", "n0", {"type": "send", "key": "k", "msg": 1}))
        await asyncio.sleep(0)  # queued behind the gossip
        net.take_down("n0")  # the kill nemesis: n0 is down
        timer.advance_to(0.05)
        with pytest.raises(RpcTimeout):
            await request
        await node.kill()
        return net
    net = asyncio.run(scenario())
    assert net.dropped_while_down == 2
    assert all(message.dropped and message.received is None for message in net.journal.messages)
    assert net.stats.counts["servers"]["recv-count"] == net.stats.counts["clients"]["recv-count"] == 0
    assert net.delivery.delivered_between_servers == 0 and net.delivery.client_waits == []
