"""The node under test as a child process: started with its stderr appended to a log file,
fed lines on stdin, read line by line from stdout, paused and resumed, ended with SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import deque
from collections.abc import Callable
from pathlib import Path

from kafka_node.clientkit.child import READ_BYTES, CannotStart, kill_group, start_async
from kafka_node.clientkit.framing import LineBuffer, split_lines

#: Longest stdout line accepted (and most of its output read ahead); a final poll naming
#: thousands of keys can be megabytes.
MAX_LINE_BYTES = 1 << 28
#: Seconds to wait for a killed node's pipes to close before closing them ourselves.
EXIT_GRACE = 5.0


class NodeStartError(Exception):
    """The node program could not be started, or did not answer init."""


class NodeProcess:
    """One incarnation of the node program."""

    def __init__(self, command: list[str], cwd: str, log_path: Path,
                 echo_stderr: Callable[[str], None] | None = None) -> None:
        self.command = command
        self.cwd = cwd
        self.log_path = log_path
        self.echo_stderr = echo_stderr  # also given each stderr line as it comes (--log-stderr)
        self._stderr_copy: asyncio.Task[None] | None = None
        self.killed = False  # by us: a truncated last line is then no fault of the node
        self.paused = False  # stopped by our SIGSTOP, until our SIGCONT
        self.answered_init = False
        self.exited_on_its_own: str | None = None  # why, when it exited without our SIGKILL
        self._proc: asyncio.subprocess.Process | None = None
        self._output = LineBuffer()
        self._lines: deque[bytes] = deque()  # read, not yet asked for

    async def start(self) -> None:
        with open(self.log_path, "ab") as log:
            try:
                stderr = asyncio.subprocess.PIPE if self.echo_stderr else log
                self._proc = await start_async(self.command, stderr, self.cwd, MAX_LINE_BYTES)
            except CannotStart as error:
                raise NodeStartError(str(error)) from None
        if self._proc.stdin:  # a write that leaves bytes behind makes drain() wait, as a blocking write would
            self._proc.stdin.transport.set_write_buffer_limits(high=0)
        if self.echo_stderr and self._proc.stderr:
            self._stderr_copy = asyncio.create_task(self._copy_stderr(self._proc.stderr, self.echo_stderr))

    async def _copy_stderr(self, stderr: asyncio.StreamReader, echo: Callable[[str], None]) -> None:
        """Each stderr line into the node's log, and to `echo`, as it comes, until EOF."""
        with open(self.log_path, "ab") as log:
            while line := await stderr.readline():
                log.write(line if line.endswith(b"\n") else line + b"\n")
                log.flush()
                echo(line.decode("utf-8", "replace").rstrip("\n"))

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    def write(self, data: bytes) -> bool:
        """Queue bytes for the node's stdin; False if the node can no longer read them."""
        proc = self._proc
        stdin = proc.stdin if proc else None
        if proc is None or stdin is None or stdin.is_closing() or proc.returncode is not None:
            return False
        try:
            stdin.write(data)
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def waiting_room(self) -> asyncio.Future[None] | None:
        """None while the node's stdin pipe takes what is written at once; else a future done
        once the node has read what was left over (a writer to a full pipe waits there, as
        Maelstrom's stdin thread blocks in its write)."""
        stdin = self._proc.stdin if self._proc else None
        if stdin is None or stdin.transport.get_write_buffer_size() == 0:
            return None
        return asyncio.ensure_future(self.drain())

    async def drain(self) -> None:
        if self._proc and self._proc.stdin:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await self._proc.stdin.drain()

    async def read_line(self) -> bytes:
        """The next stdout line with its newline; an unterminated last line (or the start of
        one longer than MAX_LINE_BYTES) without; b"" at EOF."""
        assert self._proc and self._proc.stdout
        while not self._lines:
            if self._output.pending_bytes > MAX_LINE_BYTES:
                return self._output.take_pending()
            chunk = await self._proc.stdout.read(READ_BYTES)
            if not chunk:
                return self._output.take_pending()
            self._lines.extend(split_lines(self._output.feed(chunk)))
        return self._lines.popleft()

    async def wait(self) -> int:
        assert self._proc
        return await self._proc.wait()

    def pause(self) -> bool:
        """SIGSTOP the node's process group (the node and what it started), as Jepsen's pause
        does; False if it is not running. Its stdin still takes what the pipe can hold."""
        if not self._signal_group(signal.SIGSTOP):
            return False
        self.paused = True
        return True

    def resume(self) -> bool:
        """SIGCONT the node's process group; False if it is not running."""
        if not self._signal_group(signal.SIGCONT):
            return False
        self.paused = False
        return True

    def _signal_group(self, signum: int) -> bool:
        if self._proc is None or self.killed or self._proc.returncode is not None:
            return False
        try:
            os.killpg(self._proc.pid, signum)
        except ProcessLookupError:
            return False
        return True

    async def kill(self, grace: float = EXIT_GRACE) -> int | None:
        """SIGKILL the node (and anything it started in its session); its exit status.

        Python 3.11's `wait()` also waits for the node's pipes to close, which a grandchild
        that left the session can hold open forever: after `grace` seconds we close them."""
        if not self._proc:
            return None
        self.killed, self.paused = True, False  # SIGKILL ends a stopped process too
        if self._proc.returncode is None:
            kill_group(self._proc.pid)
            # Not Popen.kill(): it first polls, and a node already dead of the SIGKILL above
            # would be reaped there, behind asyncio's child watcher (which then reports 255).
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, signal.SIGKILL)
        if self._proc.stdin and not self._proc.stdin.transport.is_closing():
            self._proc.stdin.transport.abort()  # what it never read is thrown away; a writer waiting goes on
        status: int | None
        try:
            status = await asyncio.wait_for(self._proc.wait(), grace)
        except TimeoutError:
            self.close()
            status = self._proc.returncode
        return status

    def close(self) -> None:
        """Close our ends of the node's pipes, so that a reader of its stdout sees EOF."""
        # asyncio.subprocess.Process has no public close(); its transport's closes the pipes.
        transport = getattr(self._proc, "_transport", None)
        if transport is not None:
            transport.close()

    def append_to_log(self, text: str) -> None:
        """A runner note in the node's log, between its own lines (only while it is not running)."""
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(text.rstrip("\n") + "\n")
