"""A node program as a client's child process: started in a session of its own with pipes on its
stdin and stdout, and ended by a SIGKILL of its whole process group."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import subprocess
from typing import IO

#: Pipe capacity asked for (Linux); a big poll reply then crosses in one piece.
PIPE_BYTES = 1 << 20
#: Bytes asked for by one read of the node's stdout.
READ_BYTES = 1 << 20

Stderr = IO[bytes] | int


class CannotStart(Exception):
    """The node program could not be started at all (not found, not executable, ...)."""

    def __init__(self, command: list[str], error: OSError) -> None:
        super().__init__(f"cannot start {' '.join(command)}: {error}")


# Both starts give the node a session of its own, so that kill_group also ends whatever it
# started (a child that it forgot to end, a shell's command).

def start(command: list[str], stderr: Stderr, cwd: str | None) -> subprocess.Popen[bytes]:
    """Start the node with unbuffered pipes on its stdin and stdout; or CannotStart."""
    try:
        return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, cwd=cwd,
                                bufsize=0, start_new_session=True)
    except OSError as error:
        raise CannotStart(command, error) from None


async def start_async(command: list[str], stderr: Stderr, cwd: str | None, limit: int) -> asyncio.subprocess.Process:
    """Start the node with asyncio streams on its stdin and stdout (buffering up to `limit`
    bytes of its output); or CannotStart."""
    try:
        return await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr, cwd=cwd,
            limit=limit, start_new_session=True)
    except OSError as error:
        raise CannotStart(command, error) from None


def enlarge_pipe(fd: int) -> None:
    """Ask for PIPE_BYTES of capacity in a pipe; where that cannot be had, it stays as it is."""
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: not Linux
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def kill_group(pid: int) -> None:
    """SIGKILL the process group that the node `pid` leads; nothing if it is already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
