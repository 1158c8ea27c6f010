"""The node under load as a child process: its pipes (large, our end of stdin non-blocking),
the time to its first reply, its memory and CPU time read from /proc, and its end."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import subprocess
import time
from typing import IO

import msgspec

from kafka_node.bench import wire

#: Pipe capacity asked for (Linux); a big poll reply then crosses in one piece.
PIPE_BYTES = 1 << 20
READ_BYTES = 1 << 20
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class NodeFailure(Exception):
    """The node could not be started, or did not answer init as it should."""


class Memory(msgspec.Struct):
    """Resident memory of a process in KiB: the peak so far (VmHWM) and now (VmRSS)."""

    peak_kib: int
    now_kib: int


class Child:
    """A node program started with pipes on its stdin and stdout."""

    def __init__(self, command: list[str], stderr: IO[bytes] | int = subprocess.DEVNULL, cwd: str | None = None) -> None:
        self.command = command
        self.started_ns = time.perf_counter_ns()
        try:
            self.proc = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, cwd=cwd,
                bufsize=0, start_new_session=True,
            )
        except OSError as error:
            raise NodeFailure(f"cannot start {' '.join(command)}: {error}") from None
        assert self.proc.stdin is not None and self.proc.stdout is not None  # both are pipes
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.stdin_fd = self.stdin.fileno()
        self.stdout_fd = self.stdout.fileno()
        for fd in (self.stdin_fd, self.stdout_fd):
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        os.set_blocking(self.stdin_fd, False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def initialise(self, request: wire.Request, timeout: float = 10.0) -> tuple[float, bytes]:
        """Send `init` and wait for `init_ok`; the ms from start to it, and bytes read after it."""
        self.write_all(wire.encode_lines([request]), timeout)
        deadline = time.monotonic() + timeout
        data = b""
        while b"\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.stdout_fd], [], [], remaining)[0]:
                raise NodeFailure(f"no reply to init within {timeout:g} s")
            chunk = os.read(self.stdout_fd, READ_BYTES)
            if not chunk:
                raise NodeFailure(f"the node closed its stdout before answering init (exit status {self.proc.poll()})")
            data += chunk
        elapsed_ms = (time.perf_counter_ns() - self.started_ns) / 1e6
        line, _, rest = data.partition(b"\n")
        [reply] = wire.decode_lines(line + b"\n") or [wire.Undecodable(line=line, reason="empty line")]
        if not isinstance(reply, wire.Reply) or not isinstance(reply.body, wire.InitOk) \
                or reply.body.in_reply_to != request.body.msg_id:
            raise NodeFailure(f"expected init_ok in reply to init, got {line[:300]!r}")
        return elapsed_ms, rest

    def write_all(self, data: bytes, timeout: float) -> None:
        """Write everything, waiting for room in the pipe (for use outside the load loop)."""
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            try:
                view = view[os.write(self.stdin_fd, view):]
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([], [self.stdin_fd], [], remaining)[1]:
                    raise NodeFailure(f"the node read nothing for {timeout:g} s") from None
            except BrokenPipeError:
                raise NodeFailure(f"the node closed its stdin (exit status {self.proc.poll()})") from None

    def memory(self) -> Memory | None:
        """VmHWM and VmRSS from /proc/<pid>/status; None where there is no /proc."""
        try:
            with open(f"/proc/{self.pid}/status", "rb") as status:
                fields = dict(line.split(b":", 1) for line in status if b":" in line)
            return Memory(peak_kib=int(fields[b"VmHWM"].split()[0]), now_kib=int(fields[b"VmRSS"].split()[0]))
        except (OSError, KeyError, ValueError):
            return None

    def cpu_seconds(self) -> float | None:
        """User plus system CPU time the node has used so far; None where there is no /proc."""
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime: fields 14, 15
        except (OSError, IndexError, ValueError):
            return None

    def stop(self, timeout: float = 10.0) -> int:
        """Close its stdin, read its stdout to the end and wait for it to exit (SIGKILL after
        `timeout`); its exit status."""
        with contextlib.suppress(OSError):
            self.stdin.close()
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:  # read what it still writes, so it never blocks
            if select.select([self.stdout_fd], [], [], remaining)[0] and not os.read(self.stdout_fd, READ_BYTES):
                break
        try:
            status = self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            status = self.proc.wait()
        with contextlib.suppress(OSError):
            self.stdout.close()
        return status

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
