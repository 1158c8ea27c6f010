"""Runs one test against a node program: its nodes started and sent init, the paced main
phase, node restarts, hostile input, the recovery pause and the final polls, then SIGKILL;
the nodes' memory is sampled throughout. Returns what happened, for the checker."""

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
from kafka_node.maelstrom.history import FAIL, INFO, OK, History, Op
from kafka_node.maelstrom.hostile import HOSTILE_CLIENT, HostileLines, HostileTally
from kafka_node.maelstrom.memory import MEMORY_INTERVAL, MemoryLog
from kafka_node.maelstrom.network import (
    NODE_ID,
    RPC_TIMEOUT,
    InvalidOutput,
    Network,
    NodeLost,
    RpcTimeout,
    parse_envelope,
    parse_head,
)
from kafka_node.maelstrom.process import EXIT_GRACE, NodeProcess, NodeStartError
from kafka_node.maelstrom.services import default_services
from kafka_node.maelstrom.workload import CrashSchedule, Stagger, Workload, max_poll_offsets, restart_delay

#: Seconds the final polls may take at most (Maelstrom clips them to 10 s).
FINAL_TIME_LIMIT = 10.0
#: Mean seconds between two final polls of one client (Jepsen: stagger 1/5).
FINAL_POLL_INTERVAL = 0.2
#: Seconds a starting node has to answer init.
INIT_TIMEOUT = 10.0


@dataclass
class RunConfig:
    """What one run does, as the command line resolved it."""

    command: list[str]
    cwd: str
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
    latency: float = 0.0  # seconds added to each message between servers


@dataclass
class RunRecord:
    """Everything a run produced besides the node's own log."""

    history: History
    latencies: Latencies
    net: Network
    net_counts: dict[str, int] = field(default_factory=dict)
    restarts: list[float] = field(default_factory=list)  # seconds since start
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
    """One test run: starts (and restarts) the node, drives the workers through the phases,
    and fills `record`; an abort (bad output, a node that exits on its own) ends it early."""

    def __init__(self, config: RunConfig, progress: TextIO | None = sys.stderr) -> None:
        self.config = config
        self.history = History()
        self.latencies = Latencies(self.history.seconds)
        self.node_ids = [f"n{i}" for i in range(config.node_count)]
        self.net = Network(config.rpc_timeout, config.latency, default_services(random.Random(f"{config.seed}:services")))
        for node_id in self.node_ids:
            self.net.add_node(node_id)
        self.record = RunRecord(self.history, self.latencies, self.net)
        if config.hostile_every:
            self.record.hostile = HostileTally(config.hostile_every)
        self.hostile_lines = HostileLines(random.Random(f"{config.seed}:hostile"))
        self.memory = MemoryLog(config.memory_path) if config.memory_path else None
        self.workload = Workload(random.Random(config.seed), config.max_writes_per_key)
        self.timing = random.Random(f"{config.seed}:timing")
        self.phase = "starting"
        self._progress_stream = progress
        self._client_ids = itertools.count(1)
        self._nodes: dict[str, NodeProcess] = {}
        self._readers: dict[str, asyncio.Task] = {}
        self._aborted = asyncio.Event()
        self._main_over = asyncio.Event()
        self._last_count, self._last_time = 0, 0.0

    def new_client(self, node: str) -> Client:
        return Client(f"c{next(self._client_ids)}", node, self.net, self.latencies)

    # --- the node --------------------------------------------------------------------

    async def _start_node(self, node_id: str) -> None:
        node = NodeProcess(self.config.command, self.config.cwd, self.config.log_dir / f"{node_id}.log")
        await node.start()
        self._nodes[node_id] = node
        self.net.attach(node_id, node)
        self._readers[node_id] = asyncio.create_task(self._read(node_id, node))
        init = {"type": "init", "node_id": node_id, "node_ids": self.node_ids}
        try:
            head, body = await self.net.call("c0", node_id, init, timeout=INIT_TIMEOUT, wait_ready=False)
        except (RpcTimeout, NodeLost) as error:
            raise NodeStartError(self.record.aborted or f"{node_id} did not answer init: {error}") from None
        if head.type != "init_ok":
            raise NodeStartError(f"{node_id} answered init with {bytes(body).decode(errors='replace')}")
        node.answered_init = True
        if node.exited_on_its_own:  # its reader saw the exit before we saw the reply
            self._abort(node.exited_on_its_own)
            raise NodeStartError(node.exited_on_its_own)
        self.net.up(node_id)
        self._sample_memory()

    async def _read(self, node_id: str, node: NodeProcess) -> None:
        """Route each line the node prints (a reply to the hostile client is only counted);
        abort the test on one that is not a message."""
        hostile = self.record.hostile
        while line := await node.read_line():
            if node.killed and not line.endswith(b"\n"):
                break  # cut short by our SIGKILL
            try:
                envelope = parse_envelope(line)
                if hostile and envelope.dest == HOSTILE_CLIENT:
                    hostile.received(envelope.body, self.history.seconds())
                    continue
                head = parse_head(envelope, line)
            except InvalidOutput as error:
                self._abort(f"{node_id} printed something on stdout that is not a valid Maelstrom message: {error}")
                return
            self.net.route(node_id, envelope, head, line)
        status = await node.wait()
        if not node.killed:
            self._exited_on_its_own(node_id, node, status)

    def _exited_on_its_own(self, node_id: str, node: NodeProcess, status: int) -> None:
        """Maelstrom treats a node that exits without being killed as a crash of the test: once
        the node has answered init, abort (before, starting it fails, which says why)."""
        reason = f"{node_id} exited on its own with status {status} at {self.history.seconds():.1f} s"
        node.exited_on_its_own = reason
        self.record.node_exits.append(reason)
        node.append_to_log(f"--- maelstrom-kafka-test: {reason} ---")
        if node.answered_init:
            self._abort(reason)
        else:
            self.net.lose(node_id, reason)

    def _abort(self, reason: str) -> None:
        if self.record.aborted is None:
            self.record.aborted = reason
        self.net.lose_all(reason)
        self._aborted.set()

    async def _stop_node(self, node_id: str) -> None:
        """SIGKILL the node; give its stdout reader a few seconds to finish, then cancel it."""
        node, reader = self._nodes.get(node_id), self._readers.get(node_id)
        if node:
            self._sample_memory()
            await node.kill()
        if reader:
            try:
                await asyncio.wait_for(reader, EXIT_GRACE)  # cancels the reader on timeout
            except TimeoutError:
                if node:
                    node.close()

    async def _restart_node(self) -> None:
        """SIGKILL one node, chosen at random, and start it again."""
        node_id = self.timing.choice(self.node_ids)
        at = self.history.seconds()
        self.net.lose(node_id, f"{node_id} was killed by --restart-every")
        await self._stop_node(node_id)
        self.record.restarts.append(round(at, 3))
        self._nodes[node_id].append_to_log(
            f"--- maelstrom-kafka-test: SIGKILL at {at:.3f} s (--restart-every); restarting ---")
        try:
            await self._start_node(node_id)
        except NodeStartError as error:
            self._abort(f"{node_id} could not be restarted: {error}")

    async def _restarts(self, period: float) -> None:
        while not self._aborted.is_set():
            try:
                await asyncio.wait_for(self._main_over.wait(), restart_delay(self.timing, period))
                return
            except TimeoutError:
                await self._restart_node()

    # --- phases ----------------------------------------------------------------------

    async def run(self) -> RunRecord:
        """Run the whole test. Raises NodeStartError if the node cannot be started. Cancelled
        (on SIGINT or SIGTERM), it still kills the node; `record` holds what happened so far."""
        progress = asyncio.create_task(self._show_progress())
        memory = asyncio.create_task(self._watch_memory())
        try:
            try:
                for node_id in self.node_ids:
                    await self._start_node(node_id)
            except NodeStartError:
                if self.record.aborted:
                    return self.record
                raise
            drive = asyncio.create_task(self._drive())
            aborted = asyncio.create_task(self._aborted.wait())
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
            self.phase = "done"
            for node_id in list(self._nodes):
                await self._stop_node(node_id)
            self.record.phases["end"] = round(self.history.seconds(), 3)
            if self.memory:
                self.memory.close()
                self.record.memory = self.memory.described()
            self.record.net_counts = dict(self.net.counts)
            self._print_progress(final=True)
        return self.record

    def _enter(self, phase: str) -> None:
        self.phase = phase
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
        workers = [Worker(self, i) for i in range(self.config.concurrency)]
        self._enter("main")
        restarts = None
        if self.config.restart_every:
            restarts = asyncio.create_task(self._restarts(self.config.restart_every))
        end = self.history.seconds() + self.config.time_limit
        crashes = CrashSchedule(self.timing, self.config.concurrency, self.history.seconds())
        stagger = Stagger(self.timing, self.config.rate)
        await asyncio.gather(*(self._main_phase(w, end, crashes, stagger) for w in workers))
        self._main_over.set()
        if restarts:
            await restarts
        self._enter("recovery")
        await asyncio.sleep(self.config.recovery_time)
        self._enter("final")
        targets = dict(self.workload.max_offsets)
        keys = self.workload.keys_used()
        deadline = self.history.seconds() + FINAL_TIME_LIMIT
        await asyncio.gather(*(self._final_polls(w, keys, targets, deadline) for w in workers))

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
        while waiting and clock() < deadline:
            pause = self.timing.uniform(0, 2 * FINAL_POLL_INTERVAL)
            await asyncio.sleep(max(0.0, min(pause, deadline - clock())))
            if clock() >= deadline:
                return
            poll = await worker.execute("poll", None)
            if poll.type == OK:
                for key, seen in max_poll_offsets(poll.value.get("msgs", {})).items():
                    if waiting.get(key, -1) <= seen:
                        waiting.pop(key, None)

    # --- hostile input and memory ----------------------------------------------------

    async def _hostile_input(self, every: float) -> None:
        """Write one hostile line at random moments about `every` seconds apart, whenever the
        node is up and initialised, from the main phase until the final polls are over."""
        rng, tally = self.hostile_lines.rng, self.record.hostile
        assert tally is not None  # set when hostile input is asked for
        while True:
            await asyncio.sleep(rng.uniform(0.5 * every, 1.5 * every))
            await self.net.ready[NODE_ID].wait()
            node = self._nodes.get(NODE_ID)
            if node is None or node.killed or self.net.gone[NODE_ID]:
                continue
            kind, line, n = self.hostile_lines.next_line()
            if node.write(line):
                tally.sent(kind, line, n, self.history.seconds())

    async def _watch_memory(self) -> None:
        while True:
            await asyncio.sleep(MEMORY_INTERVAL)
            self._sample_memory()

    def _sample_memory(self) -> None:
        for node in self._nodes.values():
            if self.memory and not node.killed and node.returncode is None:
                self.memory.sample(node.pid, self.history.seconds())

    # --- progress --------------------------------------------------------------------

    async def _show_progress(self) -> None:
        last_line = 0.0
        tty = self._progress_stream is not None and self._progress_stream.isatty()
        while True:
            await asyncio.sleep(1.0)
            now = self.history.seconds()
            if tty or now - last_line >= 5.0:
                self._print_progress()
                last_line = now

    def _print_progress(self, final: bool = False) -> None:
        stream = self._progress_stream
        if stream is None:
            return
        tty = stream.isatty()
        counts = self.history.counts
        done = sum(counts.values())
        now = self.history.seconds()
        rate = (done - self._last_count) / max(1e-9, now - self._last_time)
        self._last_count, self._last_time = done, now
        by_type = {t: sum(n for (_, kind), n in counts.items() if kind == t) for t in (OK, FAIL, INFO)}
        line = (
            f"{self.phase:<9}{now:7.1f} s  {done:7d} ops  {rate:6.0f} op/s  "
            f"ok {by_type[OK]}  fail {by_type[FAIL]}  info {by_type[INFO]}"
        )
        if self.config.restart_every:
            line += f"  restarts {len(self.record.restarts)}"
        if self.record.hostile:
            line += f"  hostile {sum(self.record.hostile.sent_by_kind.values())}"
        if tty:
            stream.write("\r" + line.ljust(100)[:100] + ("\n" if final else ""))
        elif not final:
            stream.write(line + "\n")
        stream.flush()
