"""`maelstrom-kafka-test matrix`: each cell of a fault matrix run as a child test command, one after
another, with a progress line as each ends; then the table, and the worst cell's exit status."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from kafka_node.maelstrom import matrix_cells, matrix_files, matrix_flags
from kafka_node.maelstrom.matrix_cells import Cell

#: The line of the test command's summary that says where its run went (relative to the cwd).
RUN_DIRECTORY = re.compile(r"^run directory: (.+)$", re.MULTILINE)


class Stopper:
    """SIGINT and SIGTERM while the matrix runs: the cell under way is stopped (SIGTERM to its test
    command, which still writes what it recorded) and no other starts; a second signal kills it."""

    def __init__(self) -> None:
        self.signals = 0
        self.child: subprocess.Popen | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Stopper:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._signalled)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    @property
    def interrupted(self) -> bool:
        return self.signals > 0

    def watch(self, child: subprocess.Popen | None) -> None:
        """The cell's child from now on (None once it has ended); stopped at once if a signal came first."""
        self.child = child
        if self.signals:
            self._stop_child()

    def _signalled(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        self._stop_child()

    def _stop_child(self) -> None:
        if self.child is not None:
            with contextlib.suppress(ProcessLookupError):
                self.child.send_signal(signal.SIGTERM if self.signals == 1 else signal.SIGKILL)


def run_dir_of(output: str, runs: Path, before: set[Path]) -> Path | None:
    """The cell's run directory: as its summary names it, else the one directory new in
    store/kafka (a node that could not be started gets no summary)."""
    if (named := RUN_DIRECTORY.search(output)) is not None:
        return Path(named.group(1).strip())
    new = [path for path in (set(runs.iterdir()) if runs.is_dir() else set()) - before if not path.is_symlink()]
    return new[0] if len(new) == 1 else None


def run_cell(cell: Cell, args: argparse.Namespace, node_args: list[str], matrix_dir: Path,
             stopper: Stopper) -> dict[str, Any]:
    """Run one cell's test command to its end, its output kept in cells/<index>.txt; its record."""
    flags = matrix_cells.test_flags(cell, args, node_args)
    output = matrix_dir / "cells" / f"{cell.index}.txt"
    runs = Path(args.store) / "kafka"
    before = set(runs.iterdir()) if runs.is_dir() else set()
    began = time.monotonic()
    with output.open("w") as out:
        # A session of its own: a ^C in the terminal reaches the matrix only, which stops the cell once.
        child = subprocess.Popen(matrix_cells.child_command(flags), stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
        stopper.watch(child)
        status = child.wait()
        stopper.watch(None)
    run_dir = run_dir_of(output.read_text(errors="replace"), runs, before)
    return {"index": cell.index, "node_count": cell.node_count, "fault": cell.fault, "latency_dist": cell.latency_dist,
            "latency_ms": cell.latency_ms, "seed": cell.seed, "command": matrix_cells.shown_command(flags),
            "run_dir": str(run_dir) if run_dir else None, "output": output.relative_to(matrix_dir).as_posix(),
            "seconds": round(time.monotonic() - began, 1), **matrix_cells.figures_of(status, run_dir)}


def described(args: argparse.Namespace, node_args: list[str], planned: int) -> dict[str, Any]:
    """matrix.json without its cells yet: when, what and how."""
    return {
        "started": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %z"), "finished": None,
        "bin": args.bin, "node_args": node_args, "cwd": os.getcwd(),
        "axes": {"node_counts": list(args.node_counts), "latency_dists": list(args.latency_dists),
                 "latency_ms": args.latency, "faults": list(args.faults), "seeds": list(args.seeds)},
        "settings": {"time_limit": args.time_limit, "rate": args.rate, "concurrency": args.concurrency,
                     "recovery_time": args.recovery_time, "nemesis_interval": args.nemesis_interval,
                     "rpc_timeout": args.rpc_timeout, "nemesis_targets": args.nemesis_targets,
                     "store": args.store, "quick": args.quick},
        "cells_planned": planned, "interrupted": False, "exit_status": None, "cells": [],
    }


def matrix_main(argv: list[str]) -> int:
    args, node_args = matrix_flags.parse(argv)
    cells = matrix_cells.cells_of(args)
    matrix_dir = matrix_files.new_matrix_dir(Path(args.store))
    (matrix_dir / "cells").mkdir()
    matrix = described(args, node_args, len(cells))
    records: list[dict[str, Any]] = matrix["cells"]
    calm: dict[tuple[int, str, int], dict[str, Any]] = {}
    print(f"matrix of {len(cells)} cells: {matrix_dir}", file=sys.stderr, flush=True)
    with Stopper() as stopper:
        for cell in cells:
            if stopper.interrupted:
                break
            record = run_cell(cell, args, node_args, matrix_dir, stopper)
            if cell.fault == "calm":
                calm[cell.baseline] = record
            records.append(matrix_cells.with_calm_ratio(record, calm.get(cell.baseline)))
            print(matrix_cells.progress_line(record, len(cells), cell.label()), file=sys.stderr, flush=True)
            matrix_files.write(matrix_dir, matrix)
        matrix["interrupted"] = stopper.interrupted
    status = matrix_cells.matrix_status([record["status"] for record in records], matrix["interrupted"])
    matrix["finished"] = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %z")
    matrix["exit_status"] = status
    print(matrix_files.write(matrix_dir, matrix), end="")
    print(f"matrix directory: {matrix_dir} (matrix.md, matrix.json, cells/)", file=sys.stderr)
    return status
