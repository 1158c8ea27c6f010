"""An idle node costs nothing: once its replies are out, no thread of it (the serve loop, the
WAL's syncer, the checkpointer) keeps running while no request comes."""

from __future__ import annotations

import time

import pytest

from kafka_node.clientkit import procfs

#: CPU seconds an idle node may use in IDLE_S: its threads wake for nothing, so a spinning one
#: would use nearly all of IDLE_S.
IDLE_S = 1.0
IDLE_CPU_S = 0.1


@pytest.mark.parametrize("durability", ["full", "normal"])
def test_an_idle_node_uses_no_cpu_after_writes_reads_and_a_checkpoint(start_node, durability):
    node = start_node("--durability", durability)
    payload = "x" * 5_000
    for i in range(1_000):  # about 5 MB: past the WAL's checkpoint mark, so the checkpointer ran
        node.request({"type": "send", "key": str(i % 10), "msg": payload})
    node.request({"type": "commit_offsets", "offsets": {"0": 5}})
    node.request({"type": "poll", "offsets": {"0": 0}})
    node.request({"type": "list_committed_offsets", "keys": ["0"]})
    time.sleep(0.3)  # a checkpoint in progress finishes
    before = procfs.cpu_seconds(node.proc.pid)
    time.sleep(IDLE_S)
    after = procfs.cpu_seconds(node.proc.pid)
    assert before is not None and after is not None
    assert after - before < IDLE_CPU_S, f"an idle node used {after - before:.2f} s of CPU in {IDLE_S} s"
    assert node.request({"type": "send", "key": "k", "msg": "after"})["offset"] == 0
