"""For tests: `maelstrom-kafka-test` runs as child processes, each in its own working
directory, started together so that they overlap, and awaited when a test needs one."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support.scripts import installed_script

#: The runner's progress line on stderr (without a terminal, one about every 5 s).
PROGRESS = re.compile(r"^(?P<phase>\w+)\s+(?P<seconds>[\d.]+) s\s+(?P<ops>\d+) ops .*\bok (?P<ok>\d+)\b")


@dataclass
class Finished:
    status: int
    stdout: str
    stderr: str
    run_dir: Path
    results: dict[str, Any]


class Run:
    """One `maelstrom-kafka-test` child, started at once (or, if `lazy`, when a test first
    needs it) and awaited when a test needs it."""

    def __init__(self, flags: list[str], cwd: Path, lazy: bool = False) -> None:
        self.cwd = cwd
        self.flags = flags
        self.store = cwd / (flags[flags.index("--store") + 1] if "--store" in flags else "store")
        self.proc: subprocess.Popen | None = None
        self._stderr_read: list[str] = []  # progress lines a test has read before finish()
        if not lazy:
            self.start()
        self._finished: Finished | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [installed_script("maelstrom-kafka-test"), *(f.replace("{dir}", str(self.cwd)) for f in self.flags)],
            cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "TMPDIR": str(self.cwd)},  # where a node without --db makes its file
        )

    def progress(self, ready: Callable[[re.Match], bool]) -> re.Match:
        """Start the run if it is lazy, and read its progress lines until `ready(line)` holds for
        one (a PROGRESS match); that line. A run that ends first fails the test."""
        if self.proc is None:
            self.start()
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr_read.append(line)
            if (seen := PROGRESS.match(line)) and ready(seen):
                return seen
        pytest.fail("the run ended before its progress showed what was awaited:\n" + "".join(self._stderr_read))

    def finish(self) -> Finished:
        if self.proc is None:
            self.start()
        if self._finished is None:
            stdout, stderr = self.proc.communicate(timeout=120)
            stderr = "".join(self._stderr_read) + stderr
            run_dir = (self.store / "latest").resolve()
            results = json.loads((run_dir / "results.json").read_text())
            self._finished = Finished(self.proc.returncode, stdout, stderr, run_dir, results)
        return self._finished

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        for stray in self.store.glob("kafka/*/nodes/*/stray.pid"):  # left by leaves_a_child.py: ours to end
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(stray.read_text()), signal.SIGKILL)




@contextlib.contextmanager
def started_together(flags_by_name: dict[str, list[str]], tmp_path_factory: Any) -> Iterator[dict[str, Run]]:
    """A module's runs, each in a directory of its own, all started at once and stopped at the end."""
    started = {name: Run(flags, tmp_path_factory.mktemp(name)) for name, flags in flags_by_name.items()}
    try:
        yield started
    finally:
        for run in started.values():
            run.stop()
