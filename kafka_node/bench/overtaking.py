"""How often a message between servers is overtaken on the runner's network, measured on its own
delivery queues in real time, beside the former runner's independent timer per message."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

from kafka_node.maelstrom.delivery import DeliveryQueue, DeliveryStats, LoopTimer, Parcel
from kafka_node.maelstrom.latency import LatencyDistribution

#: Client requests per second queued for the same receiver, beside the pair's messages.
CLIENT_RATE = 100.0


@dataclass
class Overtaking:
    """One measurement: messages of one pair at `rate` per second (Poisson), `dist` latency
    with a mean of `mean_ms`; the fraction overtaken under Maelstrom's queues and under an
    independent timer per message, and the mean wait of client requests behind the draws."""

    dist: str
    mean_ms: int
    rate: float
    messages: int = 0
    queued_fraction: float = 0.0
    independent_fraction: float = 0.0
    client_wait_mean_ms: float | None = None

    def as_data(self) -> dict[str, Any]:
        return {"dist": self.dist, "mean_ms": self.mean_ms, "rate": self.rate, "messages": self.messages,
                "overtaken_fraction": round(self.queued_fraction, 4),
                "independent_timers_fraction": round(self.independent_fraction, 4),
                "client_wait_mean_ms": self.client_wait_mean_ms}


async def _measure(dist: str, mean_ms: int, rate: float, seconds: float, seed: int) -> Overtaking:
    rng = random.Random(seed)
    latency = LatencyDistribution(dist, mean_ms, random.Random(f"{seed}:latency"))
    timer, stats = LoopTimer(), DeliveryStats()
    queue = DeliveryQueue(timer, lambda src, dest: False, stats)
    loop = asyncio.get_running_loop()
    independent: list[int] = []  # arrival order under one timer per message (the former runner)
    end = timer.now() + seconds
    next_message, next_request, number = timer.now(), timer.now(), 0
    while (now := timer.now()) < end:
        if next_message <= now:
            draw = latency.draw_ms() / 1000
            queue.put(Parcel("n0", "n1", now + draw, lambda: True, lambda: None, number=stats.number("n0", "n1")))
            loop.call_later(draw, independent.append, number)
            number += 1
            next_message += rng.expovariate(rate)
        if next_request <= now:
            queue.put(Parcel("c1", "n1", now, lambda: True, lambda: None, between_servers=False))
            next_request += rng.expovariate(CLIENT_RATE)
        await asyncio.sleep(max(0.0, min(next_message, next_request) - timer.now()))
    await asyncio.sleep(0.5 + 20 * mean_ms / 1000)  # everything in flight arrives
    latest, overtaken = -1, 0
    for arrived in independent:
        overtaken += arrived < latest
        latest = max(latest, arrived)
    waits = stats.client_waits
    return Overtaking(dist, mean_ms, rate, messages=stats.delivered_between_servers,
                      queued_fraction=stats.overtaken / max(1, stats.delivered_between_servers),
                      independent_fraction=overtaken / max(1, len(independent)),
                      client_wait_mean_ms=round(1000 * sum(waits) / len(waits), 3) if waits else None)


def measure(dist: str, mean_ms: int, rate: float, seconds: float, seed: int = 1) -> Overtaking:
    """Run the measurement for `seconds` of real time in a loop of its own."""
    return asyncio.run(_measure(dist, mean_ms, rate, seconds, seed))
