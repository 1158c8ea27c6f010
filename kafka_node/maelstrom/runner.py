"""Runs one test against a node program: the paced main phase beside its faults (restarts, the
nemesis, hostile input), the nemesis' final operations, the recovery pause and the final polls,
then SIGKILL; the nodes' memory is sampled throughout. Returns what happened, for the checker."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from kafka_node.maelstrom.client import Client, Latencies, invocation_value, perform
from kafka_node.maelstrom.db_nemesis import NODE_SPECS, DbNemesis, DbPackage
from kafka_node.maelstrom.history import INFO, OK, History, Op
from kafka_node.maelstrom.hostile import HostileLines, HostileTally
from kafka_node.maelstrom.journal import JOURNAL_LIMIT
from kafka_node.maelstrom.latency import LatencyDistribution
from kafka_node.maelstrom.memory import MEMORY_INTERVAL, MemoryLog
from kafka_node.maelstrom.nemesis import Partitioner, Period
from kafka_node.maelstrom.nemesis_package import NEMESIS_INTERVAL, NemesisPackage
from kafka_node.maelstrom.network import NODE_ID, RPC_TIMEOUT, Network
from kafka_node.maelstrom.nodes import DiskLoss, Nodes
from kafka_node.maelstrom.process import NodeStartError
from kafka_node.maelstrom.progress import Progress
from kafka_node.maelstrom.services import default_services
from kafka_node.maelstrom.workload import CrashSchedule, Stagger, Workload, max_poll_offsets, restart_delay

#: Seconds the final polls may take at most (Maelstrom clips them to 10 s).
FINAL_TIME_LIMIT = 10.0
#: Mean seconds between two final polls of one client (Jepsen: stagger 1/5).
FINAL_POLL_INTERVAL = 0.2


@dataclass
class RunConfig:
    """What one run does, as the command line resolved it."""

    command: list[str]
    node_dirs: Path  # nodes/: each node's working directory, <node id>/
    log_dir: Path  # node-logs/: <node id>.log for each node
    concurrency: int
    time_limit: float
    rate: float
    max_writes_per_key: int
    recovery_time: float
    restart_every: float | None
    seed: int
    rpc_timeout: float = RPC_TIMEOUT
    hostile_every: float | None = None
    memory_path: Path | None = None  # memory.csv; None samples nothing
    node_count: int = 1
    latency_ms: int = 0  # mean latency drawn for each message between servers
    latency_dist: str = "constant"  # of latency.DISTRIBUTIONS
    log_net_send: bool = False  # every message in jepsen.log as it is sent
    log_net_recv: bool = False  # and as it is delivered
    log_stderr: bool = False  # the nodes' stderr lines in jepsen.log as they come
    nemesis: frozenset[str] = frozenset()  # of nemesis_package.FAULTS
    nemesis_interval: float = NEMESIS_INTERVAL
    lose_disk: bool = False  # a killed node's files are deleted before it starts again
    nemesis_targets: tuple[str | None, ...] = NODE_SPECS  # the node specs kills and pauses draw from
    journal_limit: int = JOURNAL_LIMIT  # messages kept for messages.svg
    final_polls_together: bool = False  # every client's first final poll at the same instant


@dataclass
class RunRecord:
    """Everything a run produced besides the node's own log."""

    history: History
    latencies: Latencies
    net: Network
    net_counts: dict[str, int] = field(default_factory=dict)
    restarts: list[float] = field(default_factory=list)  # seconds since start
    partitions: list[Period] = field(default_factory=list)
    db_faults: dict[str, Any] = field(default_factory=dict)  # DbPackage.described(): kills, pauses
    disk_losses: list[DiskLoss] = field(default_factory=list)
    node_exits: list[str] = field(default_factory=list)  # exits we did not cause
    phases: dict[str, float] = field(default_factory=dict)  # phase name -> start (s)
    hostile: HostileTally | None = None
    memory: dict[str, Any] = field(default_factory=dict)  # MemoryLog.described()
    aborted: str | None = None


class Worker:
    """One of the `concurrency` client slots: its current process number and client."""

    def __init__(self, runner: Runner, index: int) -> None:
        self.runner = runner
        self.process = index
        self.node = runner.node_ids[index % len(runner.node_ids)]  # round-robin, as Jepsen binds them
        self.client = runner.new_client(self.node)

    def replace(self) -> None:
        """A fresh client (new id, no assignment) under the next process number, as Jepsen does."""
        self.runner.net.forget_client(self.client.name)
        self.process += self.runner.config.concurrency
        self.client = self.runner.new_client(self.node)

    async def execute(self, f: str, value: Any) -> Op:
        history = self.runner.history
        asked = invocation_value(self.client, f, value)
        invocation = history.invoke(self.process, self.client.name, f, asked, self.node)
        outcome, result, error = await perform(self.client, f, asked)
        op = history.complete(invocation, outcome, result, error)
        self.runner.workload.observe(op)
        if outcome == INFO:
            self.replace()
        return op


class Runner:
    """One test run: starts the nodes, drives the workers through the phases with the faults
    asked for (restarts, partitions, hostile input), and fills `record`; an abort (bad output,
    a node that exits on its own) ends it early."""

    def __init__(self, config: RunConfig, progress: TextIO | None = sys.stderr) -> None:
        self.config = config
        self.history = History()
        self.latencies = Latencies(self.history.seconds)
        self.node_ids = [f"n{i}" for i in range(config.node_count)]
        latency = LatencyDistribution(config.latency_dist, config.latency_ms, random.Random(f"{config.seed}:latency"))
        self.net = Network(config.rpc_timeout, latency, default_services(random.Random(f"{config.seed}:services")),
                           clock=self.history.seconds, journal_limit=config.journal_limit,
                           log_send=config.log_net_send, log_recv=config.log_net_recv)
        self.nodes = Nodes(config.command, config.node_dirs, config.log_dir, self.net, self.history, self.node_ids,
                           on_change=self._sample_memory, lose_disk=config.lose_disk,
                           log_stderr=config.log_stderr)
        self.record = RunRecord(self.history, self.latencies, self.net)
        if config.hostile_every:
            self.record.hostile = self.nodes.hostile = HostileTally(config.hostile_every)
        self.hostile_lines = HostileLines(random.Random(f"{config.seed}:hostile"))
        self.memory = MemoryLog(config.memory_path) if config.memory_path else None
        self.workload = Workload(random.Random(config.seed), config.max_writes_per_key)
        self.timing = random.Random(f"{config.seed}:timing")
        self._build_nemesis(config)
        self.progress = Progress(self.history, progress, self._progress_extras)
        self._client_ids = itertools.count(1)
        self._main_over = asyncio.Event()

    def _build_nemesis(self, config: RunConfig) -> None:
        """The packages --nemesis asks for, each with a random source of its own (so a
        partition-only run draws what it always drew), and the db nemesis --restart-every uses."""
        self.one_at_a_time = asyncio.Lock()  # Jepsen's one nemesis process
        self.db_nemesis = DbNemesis(self.nodes, self.history, self.node_ids, random.Random(f"{config.seed}:db"))
        self.partitioner = (Partitioner(self.net, self.history, self.node_ids, random.Random(f"{config.seed}:nemesis"))
                            if "partition" in config.nemesis else None)
        self.db_package = (DbPackage(self.db_nemesis, config.nemesis, config.nemesis_targets)
                           if config.nemesis & {"kill", "pause"} else None)
        packages = [package for package in (self.partitioner, self.db_package) if package]
        self.nemesis = (NemesisPackage(packages, self.history.seconds, self.one_at_a_time, config.nemesis_interval,
                                       random.Random(f"{config.seed}:nemesis-ties")) if packages else None)

    def new_client(self, node: str) -> Client:
        return Client(f"c{next(self._client_ids)}", node, self.net, self.latencies)

    async def run(self) -> RunRecord:
        """Run the whole test. Raises NodeStartError if a node cannot be started. Cancelled
        (on SIGINT or SIGTERM), it still kills the nodes; `record` holds what happened so far."""
        progress = asyncio.create_task(self._show_progress())
        memory = asyncio.create_task(self._watch_memory())
        try:
            try:
                for node_id in self.node_ids:
                    await self.nodes.start(node_id)
            except NodeStartError:
                if self.nodes.abort_reason:
                    return self.record
                raise
            drive = asyncio.create_task(self._drive())
            aborted = asyncio.create_task(self.nodes.aborted.wait())
            try:
                await asyncio.wait({drive, aborted}, return_when=asyncio.FIRST_COMPLETED)
            finally:  # also when this task is cancelled (SIGINT): no client outlives the run
                aborted.cancel()
                drive.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drive
        finally:
            progress.cancel()
            memory.cancel()
            self.progress.enter("done")
            await self.nodes.stop_all()
            self._finish_record()
            self.progress.show(final=True)
        return self.record

    def _finish_record(self) -> None:
        record = self.record
        record.phases["end"] = round(self.history.seconds(), 3)
        record.aborted = record.aborted or self.nodes.abort_reason
        record.node_exits = self.nodes.exits
        if self.memory:
            self.memory.close()
            record.memory = self.memory.described()
        record.net_counts = dict(self.net.counts)
        if self.partitioner:
            self.partitioner.heal_now()  # an interrupted run still records how its partition ended
            record.partitions = self.partitioner.periods
        if self.db_package:
            record.db_faults = self.db_package.described(self.net.dropped_while_down)
        record.disk_losses = self.nodes.disk_losses

    def _enter(self, phase: str) -> None:
        self.progress.enter(phase)
        self.record.phases[phase] = round(self.history.seconds(), 3)

    async def _drive(self) -> None:
        hostile = None
        if self.config.hostile_every:
            hostile = asyncio.create_task(self._hostile_input(self.config.hostile_every))
        try:
            await self._phases()
        finally:
            if hostile:
                hostile.cancel()

    async def _phases(self) -> None:
        """Maelstrom's phases: the main generator with the nemesis beside it until the time
        limit, the nemesis' final operation (heal), the recovery pause, the final polls."""
        workers = [Worker(self, i) for i in range(self.config.concurrency)]
        self._enter("main")
        faults = []
        if self.config.restart_every:
            faults.append(asyncio.create_task(self._restarts(self.config.restart_every)))
        end = self.history.seconds() + self.config.time_limit
        if self.nemesis:
            faults.append(asyncio.create_task(self.nemesis.run(end)))
        crashes = CrashSchedule(self.timing, self.config.concurrency, self.history.seconds())
        stagger = Stagger(self.timing, self.config.rate)
        try:
            await asyncio.gather(*(self._main_phase(w, end, crashes, stagger) for w in workers))
            self._main_over.set()
            await asyncio.gather(*faults)
        finally:  # an aborted run leaves no fault behind it
            for fault in faults:
                fault.cancel()
        if self.nemesis:
            await self.nemesis.final()
        self._enter("recovery")
        await asyncio.sleep(self.config.recovery_time)
        self._enter("final")
        targets = dict(self.workload.max_offsets)
        keys = self.workload.keys_used()
        deadline = self.history.seconds() + FINAL_TIME_LIMIT
        await asyncio.gather(*(self._final_polls(w, keys, targets, deadline) for w in workers))

    async def _restarts(self, period: float) -> None:
        """SIGKILL a node chosen at random, and start it again, about every `period` seconds:
        the db nemesis' kill and start of that node (one it holds down is left alone)."""
        while not self.nodes.aborted.is_set():
            try:
                await asyncio.wait_for(self._main_over.wait(), restart_delay(self.timing, period))
                return
            except TimeoutError:
                node_id = self.timing.choice(self.node_ids)
                async with self.one_at_a_time:
                    if not self.nodes.running(node_id):
                        continue
                    at = self.history.seconds()
                    await self.db_nemesis.kill([node_id], "--restart-every", stays_down=False)
                    await self.db_nemesis.start([node_id])
                self.record.restarts.append(round(at, 3))

    async def _main_phase(self, worker: Worker, end: float, crashes: CrashSchedule, stagger: Stagger) -> None:
        """Operations at the stagger's pace until one would start past the time limit. As in
        Jepsen, the main generator is then exhausted: completions still to come no longer
        teach it the offsets the final polls wait for (nor the keys they assign)."""
        clock = self.history.seconds
        while (now := clock()) < end:
            if crashes.due(now):
                await worker.execute("crash", None)
                continue
            slot = stagger.next_slot(now)
            if slot >= end:
                break
            await asyncio.sleep(max(0.0, slot - now))
            await self.net.ready[worker.node].wait()
            f, value = self.workload.next_op()
            await worker.execute(f, value)
        self.workload.tracking = False

    async def _final_polls(self, worker: Worker, keys: list[str], targets: dict[str, int], deadline: float) -> None:
        """As Maelstrom's final generator, per client slot: crash the client, assign every key
        from offset 0, then poll until this slot has read up to every key's highest known
        offset, or the deadline. Like Maelstrom, a client replaced after an indeterminate
        poll goes on polling without an assignment (so it reads nothing more)."""
        clock = self.history.seconds
        waiting = dict(targets)
        if not waiting:
            return  # Jepsen's final-polls generator emits nothing, not even the crash
        await worker.execute("crash", None)
        await worker.execute("assign", {"keys": keys, "seek_to_beginning": True})
        first = True
        while waiting and clock() < deadline:
            pause = self.timing.uniform(0, 2 * FINAL_POLL_INTERVAL)  # drawn either way: the run's other draws stay
            if first and self.config.final_polls_together:
                pause = 0.0
            first = False
            await asyncio.sleep(max(0.0, min(pause, deadline - clock())))
            if clock() >= deadline:
                return
            poll = await worker.execute("poll", None)
            if poll.type == OK:
                for key, seen in max_poll_offsets(poll.value.get("msgs", {})).items():
                    if waiting.get(key, -1) <= seen:
                        waiting.pop(key, None)

    # --- hostile input, memory and progress --------------------------------------------

    async def _hostile_input(self, every: float) -> None:
        """Write one hostile line at random moments about `every` seconds apart, whenever the
        node is up and initialised, from the main phase until the final polls are over."""
        rng, tally = self.hostile_lines.rng, self.record.hostile
        assert tally is not None  # set when hostile input is asked for
        while True:
            await asyncio.sleep(rng.uniform(0.5 * every, 1.5 * every))
            await self.net.ready[NODE_ID].wait()
            if (node := self.nodes.live(NODE_ID)) is None:
                continue
            kind, line, n = self.hostile_lines.next_line()
            if node.write(line):
                tally.sent(kind, line, n, self.history.seconds())

    async def _watch_memory(self) -> None:
        while True:
            await asyncio.sleep(MEMORY_INTERVAL)
            self._sample_memory()

    def _sample_memory(self) -> None:
        for node in self.nodes.processes.values():
            if self.memory and not node.killed and node.returncode is None:
                self.memory.sample(node.pid, self.history.seconds())

    async def _show_progress(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.progress.tick()

    def _progress_extras(self) -> str:
        extras = ""
        if self.config.restart_every:
            extras += f"  restarts {len(self.record.restarts)}"
        if self.partitioner:
            extras += f"  partitions {len(self.partitioner.periods)}  dropped {self.net.dropped}"
        if self.db_package:
            extras += "".join(f"  {fault}s {len(periods)}" for fault, periods in self.db_package.periods().items())
        if self.config.lose_disk:
            extras += f"  disk losses {len(self.nodes.disk_losses)}"
        if self.record.hostile:
            extras += f"  hostile {sum(self.record.hostile.sent_by_kind.values())}"
        return extras
