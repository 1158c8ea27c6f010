"""The node's memory over a run: VmRSS and VmHWM of each incarnation, read from
/proc/<pid>/status, written to memory.csv as they are sampled, and summarised at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from kafka_node.clientkit import procfs

#: Seconds between two samples.
MEMORY_INTERVAL = 1.0
CSV_HEADER = "time_s,pid,rss_kib,hwm_kib\n"


class MemoryLog:
    """Samples of the node's memory, appended to a CSV file (flushed per row, so that an
    interrupted soak keeps them) and kept for the summary."""

    def __init__(self, path: Path, proc: Path = procfs.PROC) -> None:
        self.path = path
        self.proc = proc
        self.available = procfs.available(proc)
        self.samples: list[tuple[float, int, int, int]] = []  # (s, pid, rss KiB, hwm KiB)
        self._out: TextIO | None = None

    def sample(self, pid: int | None, seconds: float) -> None:
        if not self.available or pid is None or (memory := procfs.read_memory(pid, self.proc)) is None:
            return
        if self._out is None:
            self._out = open(self.path, "w", encoding="ascii")
            self._out.write(CSV_HEADER)
        row = (round(seconds, 3), pid, memory.now_kib, memory.peak_kib)
        self.samples.append(row)
        self._out.write(",".join(map(str, row)) + "\n")
        self._out.flush()

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def described(self) -> dict[str, Any]:
        """What results.json records: start, max and end VmRSS, the highest VmHWM, in MiB."""
        if not self.available:
            return {"note": f"memory not sampled: {self.proc}/self/status is not available on this system"}
        if not self.samples:
            return {"note": "memory not sampled: the node exited before its first sample"}
        rss = [row[2] for row in self.samples]
        return {
            "file": self.path.name, "samples": len(self.samples),
            "processes": len({row[1] for row in self.samples}),
            "rss_mib": {"start": _mib(rss[0]), "max": _mib(max(rss)), "end": _mib(rss[-1])},
            "hwm_max_mib": _mib(max(row[3] for row in self.samples)),
        }


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)
