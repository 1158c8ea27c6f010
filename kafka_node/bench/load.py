"""The closed-loop load: N requests kept in flight through a node's pipes from one thread, every
reply verified, throughput and latency per request type measured over a window after a warm-up."""

from __future__ import annotations

import gc
import os
import select
import shlex
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from typing import IO

import msgspec

from kafka_node.bench.child import Child, NodeFailure
from kafka_node.bench.latency import LatencySummary, summarize
from kafka_node.bench.workload import RequestStream, Workload, mix_text
from kafka_node.clientkit import procfs, wire
from kafka_node.clientkit.child import READ_BYTES
from kafka_node.clientkit.framing import LineBuffer, encode_lines
from kafka_node.clientkit.procfs import Memory

#: Error descriptions kept word for word in a result (the rest are only counted).
KEPT_EXAMPLES = 5


@dataclass(frozen=True)
class LoadSpec:
    """One load run: which node to start, what to ask, how many at once, for how long."""

    command: list[str]
    workload: Workload
    in_flight: int = 64
    duration: float | None = 5.0  # seconds measured after the warm-up
    requests: int | None = None  # or stop once this many replies were measured (whichever comes first)
    warmup: float = 1.0  # seconds of load whose replies are verified but not measured
    reply_timeout: float = 10.0  # seconds without any reply after which the run is abandoned
    stderr_path: str | None = None  # where the node's stderr goes (discarded when None)
    cwd: str | None = None


class LoadResult(msgspec.Struct):
    """What one load run measured; `errors` counts every reply that was not the expected one."""

    command: str
    mix: str
    in_flight: int
    keys: int
    poll_keys: int
    msg_bytes: int
    warmup_s: float
    window_s: float
    acknowledged: int  # expected *_ok replies received inside the window
    throughput: float  # acknowledged per second
    latency: dict[str, LatencySummary]
    requests_sent: int
    unanswered: int  # requests whose reply never came
    errors: dict[str, int]
    error_examples: list[str]
    init_ms: float  # from starting the node to its init_ok
    node_memory: Memory | None  # at the end of the window
    node_cpu: float | None  # cores the node kept busy during the window
    generator_cpu: float  # cores this generator kept busy during the window
    exit_status: int | None

    @property
    def ok(self) -> bool:
        return not self.errors and self.unanswered == 0


class _Loop:
    """The state of one run between init and the last reply."""

    def __init__(self, spec: LoadSpec, stream: RequestStream, child: Child) -> None:
        self.spec = spec
        self.stream = stream
        self.child = child
        self.pending: dict[int, tuple[str, int, str | None]] = {}  # msg_id -> (rpc, sent at, key of a send)
        self.out = bytearray()
        self.sent = 0
        self.lines = 0  # reply lines received, of any kind
        self.acknowledged = 0
        self.latencies: dict[str, list[int]] = {}
        self.errors: Counter[str] = Counter()
        self.examples: list[str] = []
        self.window_start = self.window_end = 0
        self.measure_limit = spec.requests if spec.requests is not None else float("inf")
        self.node_memory: Memory | None = None
        self.node_cpu: float | None = None
        self.generator_cpu = 0.0

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.examples) < KEPT_EXAMPLES:
            self.examples.append(f"{kind}: {detail}"[:500])

    def top_up(self, now: int) -> None:
        """Queue requests until `in_flight` are outstanding."""
        wanted = self.spec.in_flight - (self.sent - self.lines)
        if wanted <= 0:
            return
        taken = self.stream.take(wanted)
        self.out += encode_lines([request for request, _ in taken])
        pending = self.pending
        for request, rpc in taken:
            body = request.body
            pending[body.msg_id] = (rpc, now, body.key if isinstance(body, wire.Send) else None)
        self.sent += wanted

    def take_replies(self, lines: bytes, now: int, measuring: bool) -> None:
        """Verify each reply against its request; measure it if inside the window."""
        client = self.stream.client
        pending = self.pending
        latest_offsets = self.stream.latest_offsets
        latencies = self.latencies
        for reply in wire.decode_replies(lines):
            self.lines += 1
            if isinstance(reply, wire.Undecodable):
                self.error("a line that is not a reply", f"{reply.reason}: {reply.line[:200]!r}")
                continue
            body = reply.body
            entry = pending.pop(body.in_reply_to, None)
            if entry is None:
                self.error("a reply to a msg_id not awaiting one", f"in_reply_to {body.in_reply_to}")
                continue
            rpc, sent_at, key = entry
            if type(body) is not wire.EXPECTED_REPLY[rpc]:
                if type(body) is wire.Error:
                    self.error(f"error {body.code} in reply to {rpc}", body.text)
                else:
                    self.error(f"{rpc} answered with {type(body).__struct_config__.tag}", f"in_reply_to {body.in_reply_to}")
                continue
            if reply.dest != client:
                self.error("a reply addressed to someone else", f"dest {reply.dest!r}, expected {client!r}")
                continue
            if key is not None and isinstance(body, wire.SendOk):
                latest_offsets[key] = body.offset
            if measuring and self.acknowledged < self.measure_limit:
                self.acknowledged += 1
                samples = latencies.get(rpc)
                if samples is None:
                    samples = latencies[rpc] = []
                samples.append(now - sent_at)

    def run(self, output: LineBuffer) -> None:
        spec = self.spec
        stdin_fd, stdout_fd = self.child.stdin_fd, self.child.stdout_fd
        start = time.perf_counter_ns()
        warm_end = start + int(spec.warmup * 1e9)
        measuring = stopping = False
        last_read = start
        cpu_at_start: tuple[float | None, float] = (None, 0.0)
        poller = select.poll()
        poller.register(stdout_fd, select.POLLIN)
        watching_stdin = False
        self.top_up(start)
        while True:
            if self.out:
                try:
                    del self.out[:os.write(stdin_fd, self.out)]
                except BlockingIOError:
                    pass
                except BrokenPipeError:
                    self.error("the node closed its stdin", f"{len(self.pending)} requests unanswered")
                    return
            if bool(self.out) != watching_stdin:
                watching_stdin = bool(self.out)
                if watching_stdin:
                    poller.register(stdin_fd, select.POLLOUT)
                else:
                    poller.unregister(stdin_fd)
            events = poller.poll(1000)
            now = time.perf_counter_ns()
            if not any(fd == stdout_fd for fd, _ in events):
                if now - last_read > spec.reply_timeout * 1e9:
                    self.error("no reply in time", f"nothing for {spec.reply_timeout:g} s with "
                                                    f"{self.sent - self.lines} requests outstanding")
                    return
                continue
            chunk = os.read(stdout_fd, READ_BYTES)
            now = last_read = time.perf_counter_ns()
            if not chunk:
                self.error("the node closed its stdout", f"exit status {self.child.proc.poll()}, "
                                                         f"{self.sent - self.lines} requests outstanding")
                return
            if not measuring and not stopping and now >= warm_end:
                measuring = True
                self.window_start = now if spec.warmup == 0 else warm_end
                cpu_at_start = (procfs.cpu_seconds(self.child.pid), time.process_time())
            if lines := output.feed(chunk):
                self.take_replies(lines, now, measuring)
            if measuring and self._window_over(now):
                measuring, stopping = False, True
                self.window_end = now
                self.node_memory = procfs.read_memory(self.child.pid)
                node_cpu = procfs.cpu_seconds(self.child.pid)
                seconds = (now - self.window_start) / 1e9
                if node_cpu is not None and cpu_at_start[0] is not None and seconds > 0:
                    self.node_cpu = round((node_cpu - cpu_at_start[0]) / seconds, 3)
                if seconds > 0:
                    self.generator_cpu = round((time.process_time() - cpu_at_start[1]) / seconds, 3)
            if stopping:
                if self.sent - self.lines <= 0:
                    return
            else:
                self.top_up(now)

    def _window_over(self, now: int) -> bool:
        spec = self.spec
        if spec.requests is not None and self.acknowledged >= spec.requests:
            return True
        return spec.duration is not None and now - self.window_start >= spec.duration * 1e9


def run_load(spec: LoadSpec) -> LoadResult:
    """Start the node, send init, keep `in_flight` requests outstanding for the warm-up and the
    window, wait for the replies still due, stop the node; what was measured.

    Raises NodeFailure if the node does not start or does not answer init.
    """
    if spec.in_flight < 1:
        raise ValueError("in_flight must be at least 1")
    if spec.duration is None and spec.requests is None:
        raise ValueError("give a duration or a request count")
    stream = RequestStream(spec.workload)
    stderr: IO[bytes] | int = open(spec.stderr_path, "ab") if spec.stderr_path else subprocess.DEVNULL
    collecting = gc.isenabled()
    gc.disable()  # the loop makes no reference cycles; a collection would only add pauses to the timings
    try:
        child = Child(spec.command, stderr, spec.cwd)
        loop = _Loop(spec, stream, child)
        try:
            init_ms, output = child.initialise(stream.init(), spec.reply_timeout)
            loop.run(output)
        except BaseException:
            child.kill()
            child.stop()
            raise
        exit_status = child.stop()
    finally:
        if collecting:
            gc.enable()
        if not isinstance(stderr, int):
            stderr.close()
    if not loop.window_end:  # the run ended early: measure what there was
        loop.window_end = time.perf_counter_ns()
    window = max(0.0, (loop.window_end - loop.window_start) / 1e9) if loop.window_start else 0.0
    workload = spec.workload
    return LoadResult(
        command=shlex.join(spec.command),
        mix=mix_text(workload.mix),
        in_flight=spec.in_flight,
        keys=workload.keys,
        poll_keys=workload.poll_keys,
        msg_bytes=workload.msg_bytes,
        warmup_s=spec.warmup,
        window_s=round(window, 3),
        acknowledged=loop.acknowledged,
        throughput=round(loop.acknowledged / window, 1) if window else 0.0,
        latency={rpc: summary for rpc, samples in sorted(loop.latencies.items()) if (summary := summarize(samples))},
        requests_sent=loop.sent,
        unanswered=len(loop.pending),
        errors=dict(loop.errors),
        error_examples=loop.examples,
        init_ms=round(init_ms, 1),
        node_memory=loop.node_memory,
        node_cpu=loop.node_cpu,
        generator_cpu=loop.generator_cpu,
        exit_status=exit_status,
    )


def measure_startup(command: list[str], timeout: float = 10.0) -> float:
    """Milliseconds from starting the node to its init_ok (it is then told to stop)."""
    child = Child(command)
    try:
        elapsed_ms, _ = child.initialise(RequestStream(Workload(mix={"send": 1.0})).init(), timeout)
    except NodeFailure:
        child.kill()
        child.stop()
        raise
    child.stop()
    return elapsed_ms
