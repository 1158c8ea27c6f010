"""Our node's real serve loop run in the test's own process, on pipes: for logs opened through a
VFS registered here (to make writes and syncs fail, or to record them), which a child process
could not use. The loop is the one `maelstrom-kafka` runs; the test is its client."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import IO, Any

import msgspec

from kafka_node.node import Node
from kafka_node.rpcs import PollLimits
from kafka_node.serve import serve
from kafka_node.storage import Durability, LogFile

#: A client of the node: writes requests to the first file, reads replies from the second.
Client = Callable[[IO[bytes], IO[bytes]], None]


def log_file(path: Any, vfs: str | None = None, durability: Durability = Durability.FULL) -> LogFile:
    """The log at `path`, opened as the command line opens it (through `vfs` if given)."""
    opened = LogFile(str(path), durability, vfs)
    opened.open()
    return opened


def serve_with(log: LogFile, client: Client, poll_limits: PollLimits | None = None, max_batch: int | None = None,
               close_input: bool = True) -> int:
    """Run the serve loop on this thread while `client` talks to it from another; the loop's
    exit status. Input ends when the client returns (unless not `close_input`: then only a
    failure ends serving); the client sees the end of the node's output when serving ends."""
    node = Node(log.open, poll_limits, max_batch)
    stdin_read, stdin_write = os.pipe()
    stdout_read, stdout_write = os.pipe()
    to_node = os.fdopen(stdin_write, "wb", buffering=0)
    failures: list[BaseException] = []

    def talk() -> None:
        with os.fdopen(stdout_read, "rb") as from_node:
            try:
                client(to_node, from_node)
            except BaseException as error:
                failures.append(error)
            finally:
                if close_input or failures:
                    to_node.close()
            from_node.read()  # whatever the node still writes before it stops

    talking = threading.Thread(target=talk)
    talking.start()
    try:
        status = serve(node, stdin_read, stdout_write)
    finally:
        os.close(stdout_write)
        talking.join(30)
        os.close(stdin_read)
        if not to_node.closed:
            to_node.close()
    assert not talking.is_alive(), "the client was left waiting for replies"
    if failures:
        raise failures[0]
    return status


def serve_batches(log: LogFile, batches: Sequence[bytes | Callable[[], object]], poll_limits: PollLimits | None = None,
                  max_batch: int | None = None, close_input: bool = True) -> tuple[int, list[list[dict[str, Any]]]]:
    """Serve `batches` of request lines on one run of the serve loop, each written in one
    write, the next only once every request of the one before has its reply (a callable in
    their place is called there, by the client: to make the disk fail from then on, say); the
    loop's exit status and the reply bodies that came for each batch, and after the last,
    whatever came before the node stopped on its own."""
    replies: list[list[dict[str, Any]]] = []

    def client(to_node: IO[bytes], from_node: IO[bytes]) -> None:
        for lines in batches:
            if callable(lines):
                lines()
                continue
            to_node.write(lines)
            got: list[dict[str, Any]] = []
            replies.append(got)
            while len(got) < lines.count(b'"msg_id"') and (line := from_node.readline()):
                got.append(msgspec.json.decode(line)["body"])
        if not close_input:
            for line in from_node:
                replies[-1].append(msgspec.json.decode(line)["body"])

    status = serve_with(log, client, poll_limits, max_batch, close_input)
    return status, replies
