"""The run's progress line (rewritten in place on a terminal, every 5 s otherwise) and the
run's log, jepsen.log in the run directory, as Maelstrom keeps one: phases, nodes, faults."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from kafka_node.maelstrom.history import FAIL, INFO, OK, History

log = logging.getLogger("kafka_node.maelstrom.run")

#: Seconds between two progress lines when stderr is not a terminal.
PLAIN_EVERY = 5.0


def open_run_log(path: Path) -> logging.Handler:
    """Send the run's log to `path` (and nowhere else) until the handler is removed."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return handler


def close_run_log(handler: logging.Handler) -> None:
    log.removeHandler(handler)
    handler.close()


class Progress:
    """Operations done so far, by outcome, with the phase and the extras the run asks for."""

    def __init__(self, history: History, stream: TextIO | None, extras: Callable[[], str] = lambda: "") -> None:
        self.history = history
        self.stream = stream
        self.extras = extras
        self.phase = "starting"
        self._last_count, self._last_time, self._last_line = 0, 0.0, 0.0

    def enter(self, phase: str) -> None:
        self.phase = phase
        log.info("phase %s at %.3f s", phase, self.history.seconds())

    @property
    def tty(self) -> bool:
        return self.stream is not None and self.stream.isatty()

    def tick(self) -> None:
        """Called every second: a line now on a terminal, else every PLAIN_EVERY seconds."""
        now = self.history.seconds()
        if self.tty or now - self._last_line >= PLAIN_EVERY:
            self.show()
            self._last_line = now

    def line(self) -> str:
        counts = self.history.counts
        done = sum(counts.values())
        now = self.history.seconds()
        rate = (done - self._last_count) / max(1e-9, now - self._last_time)
        self._last_count, self._last_time = done, now
        by_type = {t: sum(n for (_, kind), n in counts.items() if kind == t) for t in (OK, FAIL, INFO)}
        return (f"{self.phase:<9}{now:7.1f} s  {done:7d} ops  {rate:6.0f} op/s  "
                f"ok {by_type[OK]}  fail {by_type[FAIL]}  info {by_type[INFO]}{self.extras()}")

    def show(self, final: bool = False) -> None:
        line = self.line()
        log.info("%s", line)
        if self.stream is None:
            return
        if self.tty:
            self.stream.write("\r" + line.ljust(100)[:100] + ("\n" if final else ""))
        elif not final:
            self.stream.write(line + "\n")
        self.stream.flush()
