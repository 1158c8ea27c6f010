"""The pieces the runner and the benchmark share as clients of a node: they import nothing of the
node, cut output into lines however it is split, compute the same percentiles for both tools,
read /proc right, decode replies as strictly as Maelstrom, and end a node with all it started."""

from __future__ import annotations

import ast
import asyncio
import itertools
import os
import pkgutil
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kafka_node.clientkit
from kafka_node.bench.latency import LatencySummary, summarize
from kafka_node.clientkit import procfs, wire
from kafka_node.clientkit.child import CannotStart, kill_group, start
from kafka_node.clientkit.framing import LineBuffer, encode_line, encode_lines, split_lines
from kafka_node.clientkit.percentiles import nearest_rank, percentiles
from kafka_node.maelstrom.process import NodeProcess
from kafka_node.maelstrom.report import quantiles

CLIENTKIT = Path(kafka_node.clientkit.__file__).parent
MODULES = sorted(f"kafka_node.clientkit.{module.name}" for module in pkgutil.iter_modules([str(CLIENTKIT)]))
needs_proc = pytest.mark.skipif(not procfs.available(), reason="needs /proc")


# --- nothing of the node -------------------------------------------------------------------

def test_importing_the_toolkit_loads_no_module_of_the_node(tmp_path):
    assert {"kafka_node.clientkit.wire", "kafka_node.clientkit.framing", "kafka_node.clientkit.child",
            "kafka_node.clientkit.percentiles", "kafka_node.clientkit.procfs"} <= set(MODULES)
    program = (f"import sys\nfor name in {MODULES!r}: __import__(name)\n"
               "print('\\n'.join(sorted(name for name in sys.modules if name.startswith('kafka_node'))))")
    loaded = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True,
                            check=True).stdout.split()
    assert set(loaded) == {"kafka_node", "kafka_node.clientkit", *MODULES}


def test_the_toolkit_imports_only_the_standard_library_msgspec_and_itself_even_inside_functions():
    allowed = set(sys.stdlib_module_names) | {"msgspec", "__future__"}
    for path in CLIENTKIT.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0 and node.module, f"{path.name}: relative import"
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed or name.startswith("kafka_node.clientkit"), \
                    f"{path.name} imports {name}"


# --- framing -------------------------------------------------------------------------------

def test_lines_split_across_reads_come_back_whole_and_only_once_complete():
    output = LineBuffer()
    assert output.feed(b'{"a"') == b""
    assert output.feed(b":1}") == b""
    assert output.feed(b'\n{"b":2}\n{"c"') == b'{"a":1}\n{"b":2}\n'
    assert output.pending_bytes == 4
    assert output.feed(b":3}\n") == b'{"c":3}\n'
    assert output.feed(b"cut short") == b""
    assert output.take_pending() == b"cut short"
    assert output.take_pending() == b"" and output.pending_bytes == 0


def test_a_buffer_can_start_with_output_read_before_it():
    assert LineBuffer(b'{"a"').feed(b":1}\n") == b'{"a":1}\n'


@given(st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=20),
       st.binary(max_size=10).map(lambda b: b.replace(b"\n", b"")),
       st.lists(st.integers(min_value=0, max_value=700), max_size=30))
def test_however_the_output_is_cut_the_same_lines_come_out(lines, unterminated, cuts):
    stream = b"".join(line + b"\n" for line in lines) + unterminated
    bounds = sorted({0, len(stream), *(min(cut, len(stream)) for cut in cuts)})
    output = LineBuffer()
    received = [output.feed(stream[start:end]) for start, end in itertools.pairwise(bounds)]
    assert split_lines(b"".join(received)) == [line + b"\n" for line in lines]
    assert output.take_pending() == unterminated


def test_only_a_newline_ends_a_line():
    assert split_lines(b'{"a":\r1}\n\n{"b":2}\r\n') == [b'{"a":\r1}\n', b"\n", b'{"b":2}\r\n']
    assert split_lines(b"") == []


def test_messages_are_encoded_one_json_line_each():
    assert encode_line({"src": "c1", "body": {"type": "send"}}) == b'{"src":"c1","body":{"type":"send"}}\n'
    request = wire.Request("c1", "n0", wire.Send("k", msgspec.Raw(b'"v"'), 7))
    line = b'{"src":"c1","dest":"n0","body":{"type":"send","key":"k","msg":"v","msg_id":7}}\n'
    assert encode_lines([request, request]) == line * 2


def test_the_runner_reads_a_real_node_line_by_line_however_it_writes(tmp_path):
    # The node writes a line in three pieces, two lines in one write, then a line it never ends.
    program = ("import os, time\n"
               "for piece in (b'{\"a\"', b':1', b'}\\n{\"b\":2}\\n{\"c\":3}\\n', b'cut short'):\n"
               "    os.write(1, piece); time.sleep(0.05)\n")

    async def read_all() -> list[bytes]:
        node = NodeProcess([sys.executable, "-c", program], str(tmp_path), tmp_path / "log")
        await node.start()
        lines = []
        while line := await node.read_line():
            lines.append(line)
        assert await node.wait() == 0
        return lines

    assert asyncio.run(asyncio.wait_for(read_all(), 10)) == [b'{"a":1}\n', b'{"b":2}\n', b'{"c":3}\n', b"cut short"]


# --- percentiles ---------------------------------------------------------------------------

def test_percentiles_are_nearest_rank():
    assert percentiles(range(100, 0, -1)) == {"p50": 50, "p95": 95, "p99": 99, "max": 100}
    assert percentiles([7]) == {"p50": 7, "p95": 7, "p99": 7, "max": 7}
    assert percentiles([2, 1]) == {"p50": 1, "p95": 2, "p99": 2, "max": 2}
    assert percentiles([0.3, 0.1, 0.2, 0.4]) == {"p50": 0.2, "p95": 0.4, "p99": 0.4, "max": 0.4}
    assert percentiles([]) == {}
    assert nearest_rank([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9) == 9
    assert nearest_rank([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.91) == 10


def test_both_tools_report_the_same_latencies_in_their_own_formats():
    samples_ns = [250_000, 1_500_000, 3_000_000, 900_000, 12_345_678]
    assert quantiles([ns / 1e9 for ns in samples_ns]) == {
        "count": 5, "p50": 1.5, "p95": 12.346, "p99": 12.346, "max": 12.346}
    assert summarize(samples_ns) == LatencySummary(count=5, p50_ms=1.5, p95_ms=12.346, p99_ms=12.346, max_ms=12.346)
    assert quantiles([]) == {"count": 0} and summarize([]) is None


# --- /proc ---------------------------------------------------------------------------------

@needs_proc
def test_memory_and_cpu_time_of_this_very_process():
    ballast = b"x" * (64 << 20)  # written, so resident
    memory = procfs.read_memory(os.getpid())
    assert memory is not None
    assert 64 << 10 < memory.now_kib <= memory.peak_kib
    del ballast
    before = procfs.cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    after = procfs.cpu_seconds(os.getpid())
    assert before is not None and after is not None
    assert 0.15 <= after - before <= 0.5


@needs_proc
def test_a_process_that_is_gone_or_a_zombie_has_no_memory():
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        status, deadline = Path(f"/proc/{zombie.pid}/status"), time.monotonic() + 10
        while "State:\tZ" not in status.read_text():  # exited, not yet waited for
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        assert procfs.read_memory(zombie.pid) is None
    finally:
        zombie.wait()
    assert procfs.read_memory(zombie.pid) is None
    assert procfs.cpu_seconds(2**22 + 1) is None  # above Linux's pid_max: no such process


def test_without_proc_nothing_is_read(tmp_path):
    assert not procfs.available(tmp_path)
    assert procfs.read_memory(os.getpid(), tmp_path) is None
    assert procfs.cpu_seconds(os.getpid(), tmp_path) is None


# --- wire ----------------------------------------------------------------------------------

def test_replies_are_checked_as_strictly_as_maelstrom_checks_them():
    """Each wrong reply differs from the right one in one thing only: an extra field, a
    mistyped offset, a mistyped in_reply_to; each of them alone makes the reply malformed."""
    checked = wire.PollOk[wire.PolledMessages]
    poll_ok = b'{"type":"poll_ok","in_reply_to":3,"msg_id":9,"msgs":{"k":[[0,"v"]],"j":null}}'
    assert msgspec.json.decode(poll_ok, type=checked).msgs == {"k": [(0, "v")], "j": None}
    for wrong in [b'{"type":"poll_ok","in_reply_to":3,"msg_id":9,"msgs":{"k":[[0,"v"]],"j":null},"extra":1}',
                  b'{"type":"poll_ok","in_reply_to":3,"msg_id":9,"msgs":{"k":[["0","v"]],"j":null}}',
                  b'{"type":"poll_ok","in_reply_to":"3","msg_id":9,"msgs":{"k":[[0,"v"]],"j":null}}']:
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(wrong, type=checked)


def test_decoding_for_speed_leaves_polled_messages_undecoded_and_names_each_wrong_line():
    block = (b'{"src":"n0","dest":"c1","body":{"type":"poll_ok","in_reply_to":1,"msgs":{"k":[[0,"v"]]}}}\n'
             b'{"src":"n0","dest":"c1","body":{"type":"send_ok","in_reply_to":2,"offset":0,"extra":1}}\n'
             b'not json\n'
             b'{"src":"n0","dest":"c1","body":{"type":"error","in_reply_to":4,"code":11,"definite":true}}\n')
    poll, extra, garbage, error = wire.decode_replies(block)
    assert isinstance(poll, wire.Reply) and isinstance(poll.body, wire.PollOk)
    assert bytes(poll.body.msgs) == b'{"k":[[0,"v"]]}'
    assert isinstance(extra, wire.Undecodable) and extra.line == block.splitlines()[1] and extra.reason
    assert isinstance(garbage, wire.Undecodable) and garbage.line == b"not json"
    assert isinstance(error, wire.Reply) and error.body == wire.Error(code=11, in_reply_to=4)


# --- the child process ---------------------------------------------------------------------

def test_a_program_that_cannot_start_says_which():
    with pytest.raises(CannotStart, match="cannot start /no/such/program --flag"):
        start(["/no/such/program", "--flag"], subprocess.DEVNULL, None)


@needs_proc
def test_killing_the_group_ends_what_the_node_started_too(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    node = start([sys.executable, "-c", "import subprocess, sys, time\n"
                  f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
                  f"open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(60)"],
                 subprocess.DEVNULL, str(tmp_path))
    deadline = time.monotonic() + 10
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    grandchild = int(pid_file.read_text())
    kill_group(node.pid)
    assert node.wait(10) == -9
    node.stdout.close()
    node.stdin.close()
    while procfs.read_memory(grandchild) is not None:  # gone, or a zombie its new parent has yet to reap
        assert time.monotonic() < deadline, "the node's own child outlived the SIGKILL of its group"
        time.sleep(0.02)
    kill_group(node.pid)  # once it is gone, nothing happens
