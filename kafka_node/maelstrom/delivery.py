"""Delivery as Maelstrom's network does it (`send!` and `recv!` in src/maelstrom/net.clj): one
deadline-ordered queue per destination, taken one message at a time, cut links checked as a
message is taken, and what delivery did: messages overtaken, client requests held back."""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kafka_node.clientkit.percentiles import percentiles


class Timer(Protocol):
    """The clock deliveries wait on."""

    def now(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> object: ...


class LoopTimer:
    """The running asyncio loop's clock and timers."""

    def now(self) -> float:
        return time.monotonic()  # the clock asyncio's loop schedules by

    def call_later(self, delay: float, callback: Callable[[], None]) -> object:
        return asyncio.get_running_loop().call_later(delay, callback)


class Waiting(Protocol):
    """What a delivery returns when its receiver cannot take more yet (a pipe that is full)."""

    def add_done_callback(self, callback: Callable[[Any], None]) -> None: ...


#: What handing a message over did: True, it reached its receiver; False, it did not (its node
#: was down, or is starting again); a Waiting, it reached a receiver that cannot take more yet.
Handed = bool | Waiting


@dataclass(eq=False, slots=True)
class Parcel:
    """One message on its way: `deliver` hands it over (saying what that did), `drop` is called
    if a cut link drops it instead."""

    src: str
    dest: str
    deadline: float
    deliver: Callable[[], Handed]
    drop: Callable[[], None]
    queued: float = 0.0
    between_servers: bool = True  # drew a latency: neither end is a client
    number: int = 0  # its place among the messages from src to dest


@dataclass
class DeliveryStats:
    """What delivery did to order and waiting: between servers, how many delivered messages
    were overtaken (a later message from the same sender to the same receiver arrived first);
    for client requests (no latency of their own), how long each waited behind earlier draws."""

    delivered_between_servers: int = 0
    overtaken: int = 0
    client_waits: list[float] = field(default_factory=list)  # seconds, one per client request delivered
    _latest: dict[tuple[str, str], int] = field(default_factory=dict)  # pair -> highest number delivered
    _numbers: dict[tuple[str, str], itertools.count] = field(default_factory=dict)

    def number(self, src: str, dest: str) -> int:
        counter = self._numbers.get((src, dest))
        if counter is None:
            counter = self._numbers[src, dest] = itertools.count()
        return next(counter)

    def delivered(self, parcel: Parcel, now: float) -> None:
        if parcel.between_servers:
            self.delivered_between_servers += 1
            pair = parcel.src, parcel.dest
            latest = self._latest.get(pair, -1)
            if latest > parcel.number:
                self.overtaken += 1
            else:
                self._latest[pair] = parcel.number
        else:
            self.client_waits.append(now - parcel.queued)

    def described(self) -> dict[str, Any]:
        delivered = self.delivered_between_servers
        waits = percentiles(self.client_waits)
        return {
            "delivered_between_servers": delivered, "overtaken": self.overtaken,
            "overtaken_fraction": round(self.overtaken / delivered, 4) if delivered else None,
            "client_requests_held": {"count": len(self.client_waits),
                                     "held": sum(1 for wait in self.client_waits if wait >= 0.001),
                                     "mean": round(sum(self.client_waits) / len(self.client_waits) * 1000, 3)
                                     if self.client_waits else None,
                                     **{name: round(seconds * 1000, 3) for name, seconds in waits.items()}},
        }


class DeliveryQueue:
    """One destination's queue and its one receiver, as net.clj's `recv!` loop: take the
    message with the earliest deadline queued at that moment; drop it if `cut(src, dest)` now;
    else wait until its deadline (whole milliseconds, as `Thread/sleep (long dt)`) and hand it
    over, then take the next. So a long draw holds back all queued behind it, client requests
    too, and a message overtakes another only when both were queued when the earlier was taken."""

    def __init__(self, timer: Timer, cut: Callable[[str, str], bool], stats: DeliveryStats) -> None:
        self.timer = timer
        self.cut = cut
        self.stats = stats
        self._heap: list[tuple[float, int, Parcel]] = []
        self._order = itertools.count()  # equal deadlines: first queued, first taken
        self._busy = False  # taking, waiting for a deadline, or waiting for the receiver

    def put(self, parcel: Parcel) -> None:
        parcel.queued = self.timer.now()
        heapq.heappush(self._heap, (parcel.deadline, next(self._order), parcel))
        if not self._busy:
            self._take()

    def _take(self) -> None:
        self._busy = True
        try:
            while self._heap:
                parcel = heapq.heappop(self._heap)[2]
                if self.cut(parcel.src, parcel.dest):
                    parcel.drop()
                    continue
                wait_ms = math.floor((parcel.deadline - self.timer.now()) * 1000)
                if wait_ms > 0:
                    self.timer.call_later(wait_ms / 1000, functools.partial(self._hand_over_and_go_on, parcel))
                    return
                if not self._hand_over(parcel):
                    return
        except BaseException:
            self._busy = False  # a delivery that failed leaves the receiver free for the next put
            raise
        self._busy = False

    def _hand_over_and_go_on(self, parcel: Parcel) -> None:
        try:
            going_on = self._hand_over(parcel)
        except BaseException:
            self._busy = False
            raise
        if going_on:
            self._take()

    def _hand_over(self, parcel: Parcel) -> bool:
        """Deliver; False when the receiver asked us to wait (then the next comes after)."""
        handed = parcel.deliver()
        if handed is False:
            return True
        self.stats.delivered(parcel, self.timer.now())
        if handed is True:
            return True
        handed.add_done_callback(lambda _: self._take())
        return False
