"""The installed `maelstrom-kafka-test` command end to end: deliberately broken nodes are caught
with the right anomaly, and our node passes the same runs, with and without restarts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kafka_node.maelstrom.checker import check
from kafka_node.maelstrom.history import read_jsonl

BIN_DIR = Path(sys.executable).parent
BROKEN = Path(__file__).parent / "broken_nodes"
SHORT = ["--time-limit", "3", "--rate", "150", "--recovery-time", "0.5"]
RESTARTING = ["--time-limit", "4", "--rate", "150", "--recovery-time", "0.5", "--restart-every", "1"]


def installed(name: str) -> str:
    path = BIN_DIR / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed; run `make install`")
    return found


def broken(script: str, *args: str) -> list[str]:
    return ["--bin", sys.executable, "--", str(BROKEN / script), *args]


def ours(*args: str) -> list[str]:
    return ["--bin", installed("maelstrom-kafka"), *(["--", *args] if args else [])]


#: name -> runner flags (each run gets its own working directory; {dir} is replaced by it).
RUNS: dict[str, list[str]] = {
    "ours": [*SHORT, "--seed", "1", *ours()],
    "ours-restarting": [*RESTARTING, "--seed", "2", "--store", "elsewhere", *ours("--db", "{dir}/log.db")],
    "forgets-sends": [*SHORT, "--seed", "1", *broken("forgets_sends.py")],
    "smaller-offsets": [*SHORT, "--seed", "1", *broken("smaller_offsets.py")],
    "skips-within-polls": [*SHORT, "--seed", "1", *broken("skipping_polls.py", "--mode", "within")],
    "skips-between-polls": [*SHORT, "--seed", "1", *broken("skipping_polls.py", "--mode", "between")],
    "duplicates": [*SHORT, "--seed", "1", *broken("duplicating.py")],
    "forgets-on-restart": [*RESTARTING, "--seed", "2", *broken("forgets_on_restart.py")],
    "chatty": [*SHORT, "--concurrency", "1", *broken("chatty.py")],
}


@dataclass
class Finished:
    status: int
    stdout: str
    stderr: str
    run_dir: Path
    results: dict[str, Any]


class Run:
    """One `maelstrom-kafka-test` child, started at once and awaited when a test needs it."""

    def __init__(self, flags: list[str], cwd: Path) -> None:
        self.cwd = cwd
        self.store = cwd / (flags[flags.index("--store") + 1] if "--store" in flags else "store")
        self.proc = subprocess.Popen(
            [installed("maelstrom-kafka-test"), *(f.replace("{dir}", str(cwd)) for f in flags)],
            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "TMPDIR": str(cwd)},  # where a node without --db makes its file
        )
        self._finished: Finished | None = None

    def finish(self) -> Finished:
        if self._finished is None:
            stdout, stderr = self.proc.communicate(timeout=120)
            run_dir = (self.store / "latest").resolve()
            results = json.loads((run_dir / "results.json").read_text())
            self._finished = Finished(self.proc.returncode, stdout, stderr, run_dir, results)
        return self._finished

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every run of this module, started together so they overlap (each takes 5-15 s)."""
    started = {name: Run(flags, tmp_path_factory.mktemp(name)) for name, flags in RUNS.items()}
    yield started
    for run in started.values():
        run.stop()


def describe(done: Finished) -> str:
    return f"exit {done.status}\n{done.stdout}\n{done.stderr[-2000:]}"


# --- broken nodes are caught -----------------------------------------------------------------

@pytest.mark.parametrize(("name", "anomaly"), [
    ("forgets-sends", "lost-write"),
    ("smaller-offsets", "nonmonotonic-send"),
    ("skips-within-polls", "int-poll-skip"),
    ("skips-between-polls", "poll-skip"),
    ("duplicates", "duplicate"),
    ("forgets-on-restart", "unseen"),
])
def test_broken_node_is_caught_with_the_right_anomaly(runs, name, anomaly):
    done = runs[name].finish()
    assert done.status == 1, describe(done)
    assert done.results["valid"] is False
    assert anomaly in done.results["anomaly_types"], describe(done)
    group = done.results["anomalies"][anomaly]
    assert group["count"] >= 1 and group["cases"][0]["key"].isdigit()
    assert group["cases"][0]["ops"], "each case cites the operations involved"
    assert f"{anomaly}: {group['count']}" in done.stdout
    assert "Analysis invalid!" in done.stdout


def test_node_losing_everything_on_restart_also_loses_acknowledged_positions(runs):
    done = runs["forgets-on-restart"].finish()
    assert done.results["run"]["restarts"], "the node was restarted"
    assert {"lost-write", "inconsistent-offsets", "committed-offset-regression"} & set(done.results["anomaly_types"])


def test_node_printing_non_messages_aborts_the_test(runs):
    done = runs["chatty"].finish()
    assert done.status == 1, describe(done)
    assert done.results["valid"] is False
    assert "not a valid Maelstrom message" in done.results["aborted"]
    assert "debug: handling" in done.results["aborted"]
    assert "Test aborted!" in done.stdout


# --- our node passes the same runs ------------------------------------------------------------

def test_our_node_passes_a_short_run(runs):
    done = runs["ours"].finish()
    assert done.status == 0, describe(done)
    assert done.results["valid"] is True and done.results["anomalies"] == {}
    for f in ("send", "poll", "assign"):
        assert done.results["stats"][f]["ok"] > 0
    assert "Everything looks good! ヽ('ー`)ノ" in done.stdout
    for name in ("history.jsonl", "results.json", "node.log", "latency-raw.png", "rate.png"):
        assert (done.run_dir / name).stat().st_size > 0, name
    assert done.run_dir.parent.name == "kafka"


def test_recorded_history_gives_the_same_verdict(runs):
    done = runs["ours"].finish()
    ops = read_jsonl(done.run_dir / "history.jsonl")
    assert ops[0].type == "invoke" and {op.client for op in ops} >= {"c1", "c2"}
    assert check(ops).valid
    assert sum(1 for op in ops if op.type != "invoke") == sum(
        n for counts in done.results["stats"].values() for n in counts.values())


def test_our_node_passes_with_restarts(runs):
    done = runs["ours-restarting"].finish()
    assert done.status == 0, describe(done)
    assert done.results["valid"] is True
    assert done.results["run"]["restarts"], "the node was restarted at least once"
    assert "SIGKILL" in (done.run_dir / "node.log").read_text()
    assert done.run_dir.is_relative_to((runs["ours-restarting"].cwd / "elsewhere").resolve())


# --- usage errors -----------------------------------------------------------------------------

@pytest.mark.parametrize(("flags", "message"), [
    (["--node-count", "3", "--bin", sys.executable], "only 1 node is supported"),
    (["--bin", "/nonexistent/node"], "no such file"),
    (["--concurrency", "3x", "--bin", sys.executable], "--concurrency"),
    (["--time-limit", "0", "--bin", sys.executable], "--time-limit"),
    (["--time-limit", "1", "--bin", sys.executable, "--", "-c", "raise SystemExit(3)"], "could not be started"),
])
def test_usage_errors_and_unstartable_nodes_exit_2(tmp_path, flags, message):
    done = subprocess.run([installed("maelstrom-kafka-test"), *flags], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done
    assert message in done.stderr


def test_plots_are_skipped_with_a_note_without_matplotlib(runs, tmp_path, monkeypatch):
    from kafka_node.maelstrom import report

    ops = read_jsonl(runs["ours"].finish().run_dir / "history.jsonl")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    note = report.plot(ops, [], tmp_path)
    assert note and "matplotlib is not installed" in note
    assert not list(tmp_path.glob("*.png"))
