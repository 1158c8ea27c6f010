"""A running process's resource use as Linux reports it under /proc: resident memory from
/proc/<pid>/status and CPU time from /proc/<pid>/stat; None wherever that is not available."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

PROC = Path("/proc")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class Memory(msgspec.Struct):
    """Resident memory of a process in KiB: the peak so far (VmHWM) and now (VmRSS)."""

    peak_kib: int
    now_kib: int


def available(proc: Path = PROC) -> bool:
    """Whether this system has the /proc files read here."""
    return (proc / "self" / "status").exists()


def read_memory(pid: int, proc: Path = PROC) -> Memory | None:
    """VmHWM and VmRSS of a running process; None once it has exited or become a zombie (whose
    status has no memory lines), or where there is no /proc."""
    try:
        status = (proc / str(pid) / "status").read_bytes()
    except OSError:
        return None
    fields = dict(line.split(b":", 1) for line in status.splitlines() if b":" in line)
    try:
        return Memory(peak_kib=int(fields[b"VmHWM"].split()[0]), now_kib=int(fields[b"VmRSS"].split()[0]))
    except (KeyError, ValueError, IndexError):
        return None


def cpu_seconds(pid: int, proc: Path = PROC) -> float | None:
    """User plus system CPU time the process has used so far; None where it cannot be read."""
    try:
        stat = (proc / str(pid) / "stat").read_bytes()
        fields = stat.rsplit(b")", 1)[1].split()  # after the command name, which may hold anything
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime: fields 14, 15
    except (OSError, IndexError, ValueError):
        return None
