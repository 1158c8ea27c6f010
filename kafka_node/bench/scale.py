"""w: a follower restarted behind its leader by the same 1,000 messages, in a partition of 100,000
keys and of 1,000: what bringing it back costs (time, bytes) as the keys that did not change grow."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw
import msgspec

from kafka_node.bench import catchup, datasets

#: The partition's keys in the measured run and in its baseline: every one holds PER_KEY messages
#: and has a committed offset (its last), as after a consumer read them all.
KEYS = 100_000
BASELINE_KEYS = 1_000
PER_KEY = 10
#: What the restarted follower lacks: the partition's last messages (those of its last 100 keys),
#: and the commits of their offsets. The same in both runs: the keys that changed.
BEHIND = 1_000
LEADER, FOLLOWER, RESTARTED = catchup.LEADER, catchup.FOLLOWER, catchup.WIPED
TIME_LIMIT = 10.0
_encode = msgspec.json.Encoder().encode
_SEND_LINE = re.compile(r'^(\S+ \S+) INFO :send \{"id":\d+,"src":"(\w+)","dest":"(\w+)"')


def behind_copy(source: Path, target: Path, behind: int) -> Path:
    """A replica's copy of the leader's log `source` that lacks its last `behind` messages of
    partition 0, and the committed offsets past what it keeps (a follower that was down while
    they were written and committed)."""
    datasets.replica_copy(source, target)
    conn = apsw.Connection(str(target))
    try:
        with conn:
            last = conn.execute("SELECT max(seq) FROM messages WHERE part = 0").get
            keys = [key for (key,) in conn.execute(
                "DELETE FROM messages WHERE part = 0 AND seq > ? RETURNING key", (last - behind,))]
            conn.executemany(
                """
                UPDATE log_keys SET
                    next_offset = (SELECT coalesce(max(log_offset) + 1, 0) FROM messages WHERE messages.key = log_keys.key),
                    committed_offset = (SELECT max(log_offset) FROM messages WHERE messages.key = log_keys.key)
                WHERE key = ?
                """,
                [(key,) for key in set(keys)])
    finally:
        conn.close()
    return target


def committed_log(cache_dir: Path, keys: int) -> Path:
    """The leader's log of `keys` keys of partition 0 (PER_KEY messages each, written as the
    seed's workload writes), every key's offset committed to its last message; cached."""
    def build(target: Path) -> Path:
        source = datasets.cached_partition_log(cache_dir, catchup.partition_keys(keys), PER_KEY, 1, catchup.AT_A_TIME)
        return commit_every_key(datasets.replica_copy(source, target))
    return datasets.cached(cache_dir / f"committed-{keys}x{PER_KEY}.db", build)


def commit_every_key(path: Path) -> Path:
    """Every key of the (closed) log at `path` with its offset committed to its last message,
    checkpointed: the file alone holds it."""
    conn = apsw.Connection(str(path))
    try:
        with conn:
            conn.execute("UPDATE log_keys SET committed_offset = next_offset - 1")
        conn.pragma("wal_checkpoint", "TRUNCATE")
    finally:
        conn.close()
    return path


def measure(runner: str, node: str, work: Path, cache_dir: Path, progress: Callable[[str], None],
            unexplained: Callable[[dict[str, Any]], list[str]]) -> tuple[dict[str, Any], list[str]]:
    """Both runs' figures (under "keys" and "baseline") and the failures met."""
    found: dict[str, Any] = {}
    failures: list[str] = []
    for name, keys in (("baseline", BASELINE_KEYS), ("keys", KEYS)):
        began = time.monotonic()
        source = committed_log(cache_dir, keys)
        directory = work / f"scale-{keys}"
        directory.mkdir()
        datasets.replica_copy(source, directory / f"{LEADER}.db")
        datasets.replica_copy(source, directory / f"{FOLLOWER}.db")
        behind_copy(source, directory / f"{RESTARTED}.db", BEHIND)
        os.sync()
        results, run_dir = _run(runner, node, directory)
        if results is None or run_dir is None:
            failures.append(f"scale ({keys:,} keys): the runner left no results.json")
            continue
        if results.get("aborted") or unexplained(results):
            failures.append(f"scale ({keys:,} keys): the run was not valid: "
                            f"{results.get('aborted') or results.get('anomaly_types')}")
        send_p50 = results["perf"]["rpc_latency_ms"].get("send", {}).get("p50")
        found[name] = figures(run_dir) | {"keys": keys, "send_p50_ms": send_p50}
        if found[name]["in_sync_s"] is None:
            failures.append(f"scale ({keys:,} keys): {RESTARTED} was not back in the in-sync set by the end of the run")
        progress(f"scale, {keys:,} keys: {RESTARTED} in sync after {found[name]['in_sync_s']} s, "
                 f"{found[name]['bytes_to_it']:,} bytes from its leader, the largest message "
                 f"{found[name]['largest_message']:,} ({time.monotonic() - began:.1f} s)")
    return found, failures


def _run(runner: str, node: str, directory: Path) -> tuple[dict[str, Any] | None, Path | None]:
    """The seed's workload on 3 nodes, each on its file in `directory`, every message logged."""
    command = catchup.seed_command(runner, node, directory, TIME_LIMIT, "--log-net-send")
    with open(directory / "runner.out", "wb") as out:
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=directory, check=False)
    results = directory / "store" / "latest" / "results.json"
    if not results.exists():
        return None, None
    return json.loads(results.read_text()), results.parent.resolve()


def figures(run_dir: Path) -> dict[str, Any]:
    """From the restarted follower's start to its return to partition 0's in-sync set: how long,
    and what the partition's leader sent it until then (its replicate messages, alone or in
    bundles: how many, their bytes, and the largest)."""
    start, in_sync = catchup.started(run_dir, RESTARTED), catchup.back_in_sync(run_dir, RESTARTED)
    sizes = replicate_sizes(run_dir, LEADER, RESTARTED, in_sync if in_sync is not None else float("inf"))
    return {"in_sync_s": None if in_sync is None else round(in_sync - start, 3),
            "bytes_to_it": sum(sizes), "messages_to_it": len(sizes), "largest_message": max(sizes, default=0)}


def replicate_sizes(run_dir: Path, src: str, dest: str, until: float, part: int = 0) -> list[int]:
    """The size in bytes of each replicate message of partition `part` from `src` to `dest` sent
    before `until` (a wall time), as --log-net-send logged them in jepsen.log (a bundle's members
    each counted alone)."""
    sizes = []
    with open(run_dir / "jepsen.log", encoding="utf-8", errors="replace") as log:
        for line in log:
            match = _SEND_LINE.match(line)
            if not (match and match[2] == src and match[3] == dest and catchup.wall(line) < until):
                continue
            body = json.loads(line[line.index("{"):])["body"]
            sizes += [len(_encode(member)) for member in (body["msgs"] if body.get("type") == "bundle" else [body])
                      if member.get("type") == "replicate" and member.get("part") == part]
    return sizes
