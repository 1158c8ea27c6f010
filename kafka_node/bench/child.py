"""The node under load as a child process: its pipes (large, our end of stdin non-blocking), the
init handshake and the time to its first reply, writing outside the load loop, and its end."""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import time
from typing import IO

from kafka_node.clientkit import wire
from kafka_node.clientkit.child import READ_BYTES, CannotStart, enlarge_pipe, kill_group, start
from kafka_node.clientkit.framing import LineBuffer, encode_lines


class NodeFailure(Exception):
    """The node could not be started, or did not answer init as it should."""


class Child:
    """A node program started with pipes on its stdin and stdout."""

    def __init__(self, command: list[str], stderr: IO[bytes] | int = subprocess.DEVNULL, cwd: str | None = None) -> None:
        self.command = command
        self.started_ns = time.perf_counter_ns()
        try:
            self.proc = start(command, stderr, cwd)
        except CannotStart as error:
            raise NodeFailure(str(error)) from None
        assert self.proc.stdin is not None and self.proc.stdout is not None  # both are pipes
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.stdin_fd = self.stdin.fileno()
        self.stdout_fd = self.stdout.fileno()
        for fd in (self.stdin_fd, self.stdout_fd):
            enlarge_pipe(fd)
        os.set_blocking(self.stdin_fd, False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def initialise(self, request: wire.Request, timeout: float = 10.0) -> tuple[float, LineBuffer]:
        """Send `init` and wait for `init_ok`; the ms from start to it, and the node's output
        read after it."""
        try:
            self.write_all(encode_lines([request]), timeout)
        except NodeFailure as failure:  # it exited, or stopped reading, before init could be written
            raise NodeFailure(f"{failure} before answering init") from None
        deadline = time.monotonic() + timeout
        output = LineBuffer()
        lines = b""
        while not lines:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.stdout_fd], [], [], remaining)[0]:
                raise NodeFailure(f"no reply to init within {timeout:g} s")
            chunk = os.read(self.stdout_fd, READ_BYTES)
            if not chunk:
                raise NodeFailure(f"the node closed its stdout before answering init (exit status {self.proc.poll()})")
            lines = output.feed(chunk)
        elapsed_ms = (time.perf_counter_ns() - self.started_ns) / 1e6
        line, _, rest = lines.partition(b"\n")
        [reply] = wire.decode_replies(line + b"\n") or [wire.Undecodable(line=line, reason="empty line")]
        if not isinstance(reply, wire.Reply) or not isinstance(reply.body, wire.InitOk) \
                or reply.body.in_reply_to != request.body.msg_id:
            raise NodeFailure(f"expected init_ok in reply to init, got {line[:300]!r}")
        return elapsed_ms, LineBuffer(rest + output.take_pending())

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
        kill_group(self.proc.pid)
