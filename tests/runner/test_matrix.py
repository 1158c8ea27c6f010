"""`maelstrom-kafka-test matrix` end to end, through the installed console script: a tiny matrix of
our node, a broken node, a node that cannot start, an interruption, bad arguments; failover by hand."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kafka_node.maelstrom import failover, matrix_cells, matrix_files, matrix_flags

from support.runs import PROGRESS
from support.scripts import broken_node, installed_script

TINY = ["--node-counts", "1", "--latency-dists", "constant", "--seeds", "1", "--time-limit", "2",
        "--recovery-time", "0.5", "--rate", "200"]
#: One node killed about every second, and clients that give up on it after 0.5 s: with the test
#: command's defaults (10 s, 5 s) the only node would be down for the whole 2 s main phase.
QUICK_KILLS = ["--nemesis-interval", "1", "--rpc-timeout", "0.5"]
OURS = ["--bin", installed_script("maelstrom-kafka"), *TINY, *QUICK_KILLS, "--faults", "kill,calm",
        "--", "--db", "{node_id}.db"]


def broken(script: str) -> list[str]:
    program, *arguments = broken_node(script)
    return ["--bin", program, *TINY, "--faults", "calm", "--", *arguments]


#: name -> the matrix's flags; each runs in a directory of its own, all started together.
MATRICES = {
    "ours": OURS,
    "chatty": broken("chatty.py"),  # aborts its run within a second: invalid
    "cannot-start": ["--bin", "{dir}/exits.sh", *TINY, "--faults", "calm,pause"],
    "interrupted": ["--bin", installed_script("maelstrom-kafka"), *TINY, "--time-limit", "60", "--rate", "50",
                    "--faults", "calm,kill"],
}


class Matrix:
    def __init__(self, flags: list[str], cwd: Path) -> None:
        self.cwd = cwd
        (cwd / "exits.sh").write_text("#!/bin/sh\nexit 3\n")
        (cwd / "exits.sh").chmod(0o755)
        self.proc = subprocess.Popen([installed_script("maelstrom-kafka-test"), "matrix",
                                      *(flag.replace("{dir}", str(cwd)) for flag in flags)],
                                     cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.done: tuple[int, str, str] | None = None

    def finish(self) -> tuple[int, str, str]:
        if self.done is None:
            stdout, stderr = self.proc.communicate(timeout=120)
            self.done = (self.proc.returncode, stdout, stderr)
        return self.done

    @property
    def dir(self) -> Path:
        return (self.cwd / "store" / "matrix" / "latest").resolve()

    def data(self) -> dict[str, Any]:
        return json.loads((self.dir / "matrix.json").read_text())


@pytest.fixture(scope="module")
def matrices(tmp_path_factory):
    started = {name: Matrix(flags, tmp_path_factory.mktemp(name)) for name, flags in MATRICES.items()}
    yield started
    for matrix in started.values():
        if matrix.proc.poll() is None:
            matrix.proc.kill()
            matrix.proc.wait(30)


def said(done: tuple[int, str, str]) -> str:
    return f"exit {done[0]}\n{done[1]}\n{done[2][-3000:]}"


def test_a_tiny_matrix_of_our_node_passes_and_keeps_each_run(matrices):
    matrix = matrices["ours"]
    status, stdout, stderr = done = matrix.finish()
    data = matrix.data()
    cells = data["cells"]
    # Valid, or invalid only by unseen keys Maelstrom's generator stopped tracking (docs/runner.md).
    assert status == 0 or all(cell["outcome"] == "valid" or (cell["anomaly_types"] == ["unseen"] and
                                                             cell["unseen_only_untracked_keys"]) for cell in cells), said(done)
    assert data["exit_status"] == status and data["interrupted"] is False
    assert [(cell["index"], cell["fault"]) for cell in cells] == [(1, "calm"), (2, "kill")], "calm first, as the baseline"
    assert stdout == (matrix.dir / "matrix.md").read_text()
    assert matrix.dir.parent.name == "matrix" and matrix.dir.parent.parent == matrix.cwd / "store"
    for cell in cells:
        run_dir = matrix.cwd / cell["run_dir"]
        assert run_dir.parent == matrix.cwd / "store" / "kafka", "a normal run of the store"
        results = json.loads((run_dir / "results.json").read_text())
        assert results["run"]["seed"] == 1 and results["run"]["node_count"] == 1
        assert results["run"]["latency_ms"] == 5 and results["run"]["latency_dist"] == "constant"
        assert cell["maelstrom_valid"] == results["maelstrom"]["valid"] and cell["throughput"] > 0
        assert "run directory: " + cell["run_dir"] in (matrix.dir / cell["output"]).read_text()
    assert [json.loads((matrix.cwd / c["run_dir"] / "results.json").read_text())["run"]["nemesis"]
            for c in cells] == [None, "kill"]
    assert cells[0]["faults_done"] == "none" and re.fullmatch(r"[1-9]\d* kills", cells[1]["faults_done"])
    assert re.search(r"^\[2/2\] 1 node, kill, constant 5 ms, seed 1: (valid|invalid \(unseen\)), [\d.]+ % ok, "
                     r"\d+ op/s \([\d.]+ of calm\)", stderr, re.M), stderr


def test_the_kill_cell_is_compared_with_calm_and_timed_to_failover(matrices):
    matrix = matrices["ours"]
    matrix.finish()
    calm, kill = matrix.data()["cells"]
    assert calm["of_calm"] == 1.0
    assert kill["of_calm"] == round(kill["throughput"] / calm["throughput"], 3) > 0
    row = next(line for line in (matrix.dir / "matrix.md").read_text().splitlines() if line.startswith("| 2 |"))
    assert f"{kill['throughput']:.0f} op/s ({kill['of_calm']:.2f})" in row
    assert calm["failover_ms"] == [] and calm["failover_p50_ms"] is None
    expected = failover.of_run(matrix.cwd / kill["run_dir"], json.loads(
        (matrix.cwd / kill["run_dir"] / "results.json").read_text()))
    assert kill["failover_ms"] == expected["failover_ms"] and kill["failover_p99_ms"] == expected["failover_p99_ms"]


def test_each_cell_has_the_command_that_repeats_it(matrices):
    matrix = matrices["ours"]
    matrix.finish()
    table = (matrix.dir / "matrix.md").read_text()
    for cell in matrix.data()["cells"]:
        words = shlex.split(cell["command"])
        assert words[:3] == ["maelstrom-kafka-test", "--bin", installed_script("maelstrom-kafka")]
        assert words[-3:] == ["--", "--db", "{node_id}.db"]
        if cell["fault"] == "calm":  # flag, value, flag, value...: no nemesis, so no --nemesis-interval
            assert dict(zip(words[1:-3:2], words[2:-3:2], strict=True)) == {
                "--bin": installed_script("maelstrom-kafka"), "--node-count": "1", "--concurrency": "2n",
                "--time-limit": "2", "--rate": "200", "--recovery-time": "0.5", "--rpc-timeout": "0.5",
                "--latency": "5", "--latency-dist": "constant", "--seed": "1", "--store": "store"}
        else:
            assert " --nemesis kill " in cell["command"] and " --nemesis-interval 1 " in cell["command"]
        assert f"{cell['index']}. `{cell['command']}` (`{cell['run_dir']}`)" in table.splitlines()


def test_a_broken_node_fails_the_matrix_and_the_table_is_still_written(matrices):
    matrix = matrices["chatty"]
    status, stdout, _ = done = matrix.finish()
    assert status == 1, said(done)
    [cell] = matrix.data()["cells"]
    assert cell["outcome"] == "invalid" and cell["validity"] is False and "aborted" in cell["anomaly_types"]
    row = next(line for line in stdout.splitlines() if line.startswith("| 1 |"))
    assert "| invalid |" in row or "| failed |" in row
    assert (matrix.dir / "matrix.md").read_text() == stdout


def test_a_node_that_cannot_start_makes_the_matrix_exit_255(matrices):
    matrix = matrices["cannot-start"]
    status, stdout, _ = done = matrix.finish()
    assert status == 255, said(done)
    cells = matrix.data()["cells"]
    assert [cell["outcome"] for cell in cells] == ["crashed", "crashed"]
    assert all((matrix.cwd / cell["run_dir"] / "results.json").exists() for cell in cells), "found without a summary"
    assert "crashed (exit 255): the node could not be started" in stdout


def test_an_interrupted_matrix_stops_its_cell_and_writes_the_cells_done(matrices):
    matrix = matrices["interrupted"]
    output = matrix.cwd / "store" / "matrix" / "latest" / "cells" / "1.txt"
    deadline = time.monotonic() + 60
    while not any((seen := PROGRESS.match(line)) and seen["phase"] == "main" and int(seen["ok"]) >= 5
                  for line in (output.read_text().splitlines() if output.exists() else [])):
        assert time.monotonic() < deadline and matrix.proc.poll() is None, "the first cell's main phase is under way"
        time.sleep(0.2)
    matrix.proc.send_signal(signal.SIGINT)
    status, stdout, _ = done = matrix.finish()
    assert status == 130, said(done)
    data = matrix.data()
    assert data["interrupted"] is True and data["cells_planned"] == 2
    [cell] = data["cells"]
    assert cell["outcome"] == "interrupted" and "interrupted" in json.loads(
        (matrix.cwd / cell["run_dir"] / "results.json").read_text())["aborted"]
    assert "cells: 1 of 2 run (the matrix was interrupted)" in stdout
    assert len(list((matrix.cwd / "store" / "kafka").glob("2*"))) == 1, "no cell started after the signal"


@pytest.mark.parametrize(("flags", "error"), [
    (["--faults", "calm,flood"], "unknown fault 'flood'"),
    (["--latency-dists", "constant,exponential", "--latency", "0"], "needs --latency above 0"),
    (["--seeds", "1,x"], "seed 'x'"),
])
def test_bad_arguments_are_refused_with_254_before_anything_runs(tmp_path, flags, error):
    done = subprocess.run([installed_script("maelstrom-kafka-test"), "matrix", "--bin",
                           installed_script("maelstrom-kafka"), *flags], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 254 and error in done.stderr, done
    assert list(tmp_path.iterdir()) == [], "no store, no run"


# --- failover, on a hand-written history -------------------------------------------------------

def ops_of(*events: tuple[float, Any, str, str, Any]) -> list[dict[str, Any]]:
    """(seconds, process, type, f, value) in time order, as history.jsonl holds them."""
    return [{"index": i, "time": round(at * 1e9), "process": process, "type": kind, "f": f, "value": value}
            for i, (at, process, kind, f, value) in enumerate(sorted(events, key=lambda event: event[0]))]


def sent(process: int, key: str, invoked: float, done: float, kind: str = "ok") -> list[tuple]:
    return [(invoked, process, "invoke", "send", {"key": key, "msg": 1}),
            (done, process, kind, "send", {"key": key, "msg": 1, **({"offset": 0} if kind == "ok" else {})})]


HISTORY = ops_of(
    # the first kill completes at 10 s
    (9.999, "nemesis", "info", "kill", "one"), (10.0, "nemesis", "info", "kill", {"n1": "killed"}),
    *sent(0, "a", 9.5, 9.6),            # a: sent to in the second before the kill...
    *sent(0, "a", 10.2, 10.4, "fail"),  # ...then refused, then two sends, the later one ok first:
    *sent(1, "a", 10.5, 11.2),          # a waited 0.9 s (its first ok after the kill, at 10.9)
    *sent(2, "a", 10.8, 10.9),
    *sent(3, "c", 8.5, 8.6),            # c: last sent to 1.5 s before the kill, so not judged
    *sent(3, "c", 10.1, 13.0, "info"),
    *sent(4, "d", 9.7, 9.8),            # d: never sent to again, skipped
    (11.0, "nemesis", "info", "start", "all"), (11.1, "nemesis", "info", "start", {"n1": "started"}),
    # the second completes at 12 s; b is sent to after it but never ok: until the main phase ends, at 15 s
    (11.999, "nemesis", "info", "kill", "one"), (12.0, "nemesis", "info", "kill", {"n2": "killed"}),
    *sent(5, "b", 11.5, 11.6),
    *sent(5, "b", 12.5, 13.5, "info"),
    # the third, at 14 s, follows no send: no failover to judge
    (13.999, "nemesis", "info", "kill", "one"), (14.0, "nemesis", "info", "kill", {"n0": "killed"}),
)
#: A kill that found its node already down killed nothing: no failover to judge.
NOTHING_KILLED = ops_of((9.999, "nemesis", "info", "kill", "one"),
                        (10.0, "nemesis", "info", "kill", {"n1": "not-running"}),
                        *sent(0, "a", 9.5, 9.6), *sent(0, "a", 10.5, 12.0))


def test_failover_is_the_longest_wait_of_the_keys_written_before_each_kill():
    assert failover.failovers(HISTORY, 15.0) == pytest.approx([0.9, 3.0])
    assert failover.failovers(HISTORY, 14.0) == pytest.approx([0.9, 2.0]), "b counts until the main phase ends"
    assert failover.failovers([op for op in HISTORY if op["f"] != "kill"], 15.0) == []
    assert failover.failovers(NOTHING_KILLED, 15.0) == []


def test_a_runs_failover_is_read_from_its_history_in_milliseconds(tmp_path):
    cut_short = '{"index": 99, "time": 150000'  # the last line of a run killed while writing it
    (tmp_path / "history.jsonl").write_text("".join(json.dumps(op) + "\n" for op in HISTORY) + cut_short)
    found = failover.of_run(tmp_path, {"run": {"phases": {"main": 0.0, "recovery": 15.0}}})
    assert found["failover_ms"] == [900.0, 3000.0]
    assert found["failover_p50_ms"] == pytest.approx(1950.0) and found["failover_p99_ms"] == pytest.approx(2979.0)
    assert failover.of_run(tmp_path / "missing", {}) == {"failover_ms": [], "failover_p50_ms": None,
                                                         "failover_p99_ms": None}


def test_the_table_says_what_the_faults_did():
    assert matrix_cells.faults_done({}) == "none"
    run = {"partitions": {"count": 3, "cutting": 2, "dropped_messages": 41}, "kills": {"count": 2, "effective": 1},
           "pauses": {"count": 1, "effective": 0}, "disk_losses": {"count": 1}}
    assert matrix_cells.faults_done(run) == "2 cuts (41 dropped), 1 kills, 0 pauses, 1 disk losses"


def test_the_table_says_when_the_only_anomaly_is_maelstroms_generator_quirk():
    cell = {"outcome": "invalid", "status": 1, "anomaly_types": ["unseen"], "aborted": None}
    assert matrix_files.anomalies_said({**cell, "unseen_only_untracked_keys": True}) == matrix_files.UNTRACKED
    assert matrix_files.anomalies_said({**cell, "unseen_only_untracked_keys": False}) == "unseen"


def test_quick_kills_and_pauses_take_less_than_half_the_nodes_and_flags_given_win():
    args, node_args = matrix_flags.parse(["--bin", sys.executable, "--quick", "--", "--db", "x.db"])
    cells = matrix_cells.cells_of(args)
    assert len(cells) == 12 and {cell.node_count for cell in cells} == {3} and node_args == ["--db", "x.db"]
    flags = {cell.fault: matrix_cells.test_flags(cell, args, node_args) for cell in cells}
    for fault in ("kill", "pause", "kill-disk", "all"):
        assert flags[fault][flags[fault].index("--nemesis-targets") + 1] == "one,minority"
    assert "--nemesis-targets" not in flags["partition"] and "--nemesis-interval" not in flags["calm"]
    assert flags["kill"][flags["kill"].index("--time-limit") + 1] == "10"
    given, _ = matrix_flags.parse(["--bin", sys.executable, "--quick", "--nemesis-targets", "all", "--time-limit", "2.5"])
    kill = next(cell for cell in matrix_cells.cells_of(given) if cell.fault == "kill")
    chosen = matrix_cells.test_flags(kill, given, [])
    assert chosen[chosen.index("--nemesis-targets") + 1] == "all" and chosen[chosen.index("--time-limit") + 1] == "2.5"
