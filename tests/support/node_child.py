"""A `maelstrom-kafka` child process, as Maelstrom runs it: requests written to its stdin,
replies read from its stdout on a thread of their own, its stderr kept in a file."""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest

from support.scripts import installed_script


class NodeChild:
    """A running maelstrom-kafka child: write requests to its stdin, read replies from stdout."""

    def __init__(self, args: list[str], stderr_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None,
                 wrapper: list[str] | None = None) -> None:
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "ab")
        self.proc = subprocess.Popen(
            [*(wrapper or []), installed_script("maelstrom-kafka"), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            cwd=cwd,
        )
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self._ids = itertools.count(1)

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def write(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send_message(self, body: dict[str, Any], src: str = "c1") -> None:
        self.write(msgspec.json.encode({"src": src, "dest": "n0", "body": body}) + b"\n")

    def read_message(self, timeout: float = 10) -> dict[str, Any]:
        """The next line the node wrote, decoded; fails the test on timeout or EOF."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no reply within {timeout} s; node stderr:\n{self.stderr()}")
        if line is None:
            pytest.fail(f"node closed stdout (exit {self.proc.poll()}); stderr:\n{self.stderr()}")
        return msgspec.json.decode(line)

    def no_message_within(self, timeout: float) -> bool:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return True
        self.lines.put(line)
        return False

    def request(self, body: dict[str, Any], src: str = "c1") -> dict[str, Any]:
        """Send one request with a fresh msg_id and return the reply body."""
        msg_id = next(self._ids)
        self.send_message({**body, "msg_id": msg_id}, src=src)
        reply = self.read_message()
        assert reply["body"].get("in_reply_to") == msg_id, reply
        assert reply["dest"] == src, reply
        return reply["body"]

    def init(self, node_id: str = "n0") -> None:
        body = self.request({"type": "init", "node_id": node_id, "node_ids": [node_id]})
        assert body["type"] == "init_ok"

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close_stdin_and_wait(self, timeout: float = 10) -> int:
        self.proc.stdin.close()
        return self.proc.wait(timeout)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def kill(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def cleanup(self) -> None:
        self.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        self._stderr.close()


def run_node(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None, cwd: Path | None = None,
             timeout: float = 30) -> subprocess.CompletedProcess:
    """Run maelstrom-kafka to completion with the given stdin."""
    return subprocess.run(
        [installed_script("maelstrom-kafka"), *args],
        input=stdin, capture_output=True, env=env, cwd=cwd, timeout=timeout,
    )


def child_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_NODE_")}
    env.update(overrides)
    return env
