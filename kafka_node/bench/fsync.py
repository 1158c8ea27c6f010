"""The physical floor of a durable acknowledgement on this machine: the time an fsync of a
small WAL append takes, measured the way SQLite appends frames to a WAL it reuses."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from kafka_node.storage import PAGE_SIZE

#: A WAL frame: a 24-byte header and one page of a new log file.
FRAME_BYTES = 24 + PAGE_SIZE
#: Frames in the append one send's COMMIT makes (its message's leaf and its key's counter).
FRAMES_PER_SEND = 2
#: Size of the reused file the frames are written into (as a WAL past its first checkpoint).
FILE_BYTES = 4 << 20


def fsync_p50_ms(directory: Path, samples: int = 300, frames: int = FRAMES_PER_SEND) -> float:
    """Median time of fdatasync after writing `frames` frames at the end of what was written
    before, in a file already as long as a WAL in use (so no sync has to grow it)."""
    fd, name = tempfile.mkstemp(prefix="fsync-", dir=directory)
    try:
        os.write(fd, bytes(FILE_BYTES))
        os.fsync(fd)
        append = os.urandom(FRAME_BYTES * frames)
        offset, times = 0, []
        for _ in range(samples):
            if offset + len(append) > FILE_BYTES:
                offset = 0
            os.pwrite(fd, append, offset)
            offset += len(append)
            began = time.perf_counter()
            os.fdatasync(fd)
            times.append(time.perf_counter() - began)
        return statistics.median(times) * 1000
    finally:
        os.close(fd)
        os.unlink(name)
