"""`maelstrom-kafka-test serve` in a child process, seen in headless chromium: the runs newest
first coloured by verdict, their files, a run's timeline and message diagram, the fault matrices."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
import pytest
from matplotlib import image

from kafka_node.maelstrom import matrix, matrix_cells, matrix_files, matrix_flags, messages_svg, run_files, web
from kafka_node.maelstrom.checker import check
from kafka_node.maelstrom.cli import new_run_dir
from kafka_node.maelstrom.history import write_jsonl
from kafka_node.maelstrom.report import verdict_data

from support.histories import assign, poll, send, with_baseline
from support.scripts import broken_node, installed_script

SHORT = ["--time-limit", "1", "--rate", "100", "--recovery-time", "0.2", "--seed", "1"]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "the web page is tested in Debian's chromium (apt-get install chromium; `make test` does)"
    return found


def browse(url: str, profile: Path, *, screenshot: Path | None = None, height: int = 900) -> str:
    """Load `url` in headless chromium; the page's DOM once loaded (or, with `screenshot`,
    write a picture of the window there)."""
    what = [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    done = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={profile}", f"--window-size=1280,{height}", *what, url],
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    return done.stdout


def pixels_of(picture: Path, color: str) -> np.ndarray:
    """The (row, column) of every pixel of `picture` within a hair of `color` (#rrggbb)."""
    rgb = np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    shot = image.imread(picture)[:, :, :3]
    return np.argwhere(np.abs(shot - rgb).max(axis=2) < 2 / 255)


def runs_in(store: Path) -> list[Path]:
    return sorted(p.parent for p in store.glob("**/node-logs") if not p.parent.is_symlink())


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store of five runs, oldest first: our node (valid), a node that duplicates (invalid),
    our node again in a store kept within this one (valid, as `make restarts` keeps its runs),
    a history Jepsen's analysis cannot judge (unknown), and one without results yet."""
    root = tmp_path_factory.mktemp("web")
    program, *arguments = broken_node("duplicating.py")
    started = []
    for flags in (["--bin", installed_script("maelstrom-kafka")], ["--bin", program, "--", *arguments],
                  ["--store", "store/nested", "--bin", installed_script("maelstrom-kafka")]):
        before = len(runs_in(root / "store"))
        started.append(subprocess.Popen([installed_script("maelstrom-kafka-test"), *SHORT, *flags], cwd=root,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 30
        while len(runs_in(root / "store")) == before and time.monotonic() < deadline:
            time.sleep(0.01)  # side by side, but each named after a later moment than the last
    for run in started:
        run.wait(60)
    unknown = new_run_dir(root / "store")
    ops = with_baseline(send(0, "1", 1, 0), assign(1, ["1"], {}), poll(1, {"1": [[0, "1"]]}))
    write_jsonl(ops, unknown / "history.jsonl")
    run_files.write_results({**verdict_data(check(ops)), "run": {"node_count": 1}}, unknown)
    new_run_dir(root / "store")  # started, nothing written yet
    write_matrix(root / "store", *runs_in(root / "store" / "kafka")[:2])
    return root / "store"


def write_matrix(store: Path, valid: Path, invalid: Path) -> Path:
    """A fault matrix of two cells, as `maelstrom-kafka-test matrix` writes it, made of two of the
    store's runs (our node's, valid; the duplicating node's, invalid)."""
    args, node_args = matrix_flags.parse(["--bin", installed_script("maelstrom-kafka"), "--node-counts", "1",
                                          "--faults", "calm,kill", "--seeds", "1", "--latency-dists", "constant"])
    data = matrix.described(args, node_args, planned=2)
    for cell, status, run_dir in zip(matrix_cells.cells_of(args), (0, 1), (valid, invalid), strict=True):
        data["cells"].append({"index": cell.index, "node_count": 1, "fault": cell.fault, "latency_dist": "constant",
                              "latency_ms": 5, "seed": 1, "command": "maelstrom-kafka-test ...",
                              "run_dir": str(run_dir), **matrix_cells.figures_of(status, run_dir)})
    matrix_dir = matrix_files.new_matrix_dir(store)
    matrix_files.write(matrix_dir, data)
    return matrix_dir


@pytest.fixture(scope="module")
def server(store):
    proc = subprocess.Popen([installed_script("maelstrom-kafka-test"), "serve", str(store), "--host", "127.0.0.1",
                             "--port", "0"], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    listening = re.search(r"Listening on (http://\S+/)", proc.stderr.readline())
    assert listening, "the server says where it listens"
    yield listening.group(1)
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def index_dom(server, tmp_path_factory):
    return browse(server, tmp_path_factory.mktemp("profile"))


def test_the_runs_are_listed_newest_first_each_coloured_by_its_verdict(store, server, index_dom, tmp_path):
    dom = index_dom
    verdicts = re.findall(r'<td class="valid" style="background:(#\w+)">(\w+)</td>', dom)
    assert [v for _, v in verdicts] == ["incomplete", "unknown", "valid", "invalid", "valid"]
    assert all(web.COLORS[v] == color for color, v in verdicts)
    runs_table = re.findall(r"<table>.*?</table>", dom, re.S)[0]  # the matrices' table comes after it
    listed = [unquote(href) for href in re.findall(r'<td><a href="(/[^"]+/)">', runs_table)]
    runs = sorted(runs_in(store) + [p for p in (store / "kafka").iterdir() if not p.is_symlink() and
                                    not (p / "node-logs").exists()], key=lambda p: p.name)
    assert listed == [f"/{p.relative_to(store).as_posix()}/" for p in reversed(runs)]
    assert listed[2].startswith("/nested/kafka/"), "a store kept within the store is found too"
    shot = tmp_path / "index.png"
    browse(server, tmp_path / "profile", screenshot=shot)
    rows = [pixels_of(shot, web.COLORS[v])[:, 0] for v in ("incomplete", "unknown", "invalid")]
    assert all(len(row) > 200 for row in rows), "each verdict's colour is on the screen"
    middles = [row.mean() for row in rows]
    assert middles == sorted(middles), "painted in the order listed, newest at the top"


def test_each_run_links_to_its_files_which_are_served_as_they_are(store, server, index_dom, tmp_path):
    dom = index_dom
    valid = runs_in(store / "kafka")[0]
    for name in ("results.edn", "history.txt", "timeline.html", "messages.svg", "jepsen.log"):
        assert f'href="{quote(f"/kafka/{valid.name}/{name}")}"' in dom, name
    with urllib.request.urlopen(f"{server}{quote(f'kafka/{valid.name}/results.edn')}") as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        assert reply.read() == (valid / "results.edn").read_bytes()
    with urllib.request.urlopen(f"{server}{quote(f'kafka/{valid.name}/messages.svg')}") as reply:
        assert reply.headers["Content-Type"] == "image/svg+xml"
    page = browse(f"{server}{quote(f'kafka/{valid.name}/')}", tmp_path / "profile")
    assert all(f'href="{quote(f"/kafka/{valid.name}/{name}")}"' in page for name in ("history.edn", "latency-quantiles.png"))
    latest = browse(f"{server}latest/", tmp_path / "profile")
    assert web.COLORS["incomplete"] in latest and "latest" not in re.sub(r"<style>.*</style>", "", latest, flags=re.S)
    invalid = runs_in(store / "kafka")[1]
    (store / "latest").unlink()
    (store / "latest").symlink_to(Path("kafka") / invalid.name)
    page = browse(f"{server}latest/", tmp_path / "profile")
    assert f"{web.COLORS['invalid']};" in page and quote(f"/kafka/{invalid.name}/history.edn") in page, (
        "store/latest is shown as the run it names")


def test_a_runs_timeline_and_messages_open_in_the_browser(store, server, tmp_path):
    valid = runs_in(store / "kafka")[0]
    dom = browse(f"{server}{quote(f'kafka/{valid.name}/timeline.html')}", tmp_path / "profile")
    assert len(re.findall(r'<div class="op ok"', dom)) > 20
    shot = tmp_path / "timeline.png"
    browse(f"{server}{quote(f'kafka/{valid.name}/timeline.html')}", tmp_path / "profile", screenshot=shot)
    assert len(pixels_of(shot, "#6DB6FE")) > 5000, "blue boxes: operations that completed ok"
    shot = tmp_path / "messages.png"
    browse(f"{server}{quote(f'kafka/{valid.name}/messages.svg')}", tmp_path / "profile", screenshot=shot)
    assert len(pixels_of(shot, messages_svg.CLIENT_COLOR)) > 2000, "arrows between the clients and the node"


def test_each_matrix_is_listed_with_its_valid_cells_and_links_to_its_table(store, server, index_dom, tmp_path):
    dom = index_dom
    [name] = [p.name for p in (store / "matrix").iterdir() if not p.is_symlink()]
    assert "Fault matrices" in dom and "1 of 2 cells valid" in dom
    for file in ("matrix.md", "matrix.json"):
        assert f'href="{quote(f"/matrix/{name}/{file}")}"' in dom, file
    runs_table, matrices_table = re.findall(r"<table>.*?</table>", dom, re.S)
    assert f'href="{quote(f"/matrix/{name}/")}"' not in runs_table, "a matrix is not taken for a run"
    assert f'href="{quote(f"/matrix/{name}/")}"' in matrices_table
    with urllib.request.urlopen(f"{server}{quote(f'matrix/{name}/matrix.md')}") as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        assert reply.read() == (store / "matrix" / name / "matrix.md").read_bytes()
    table = browse(f"{server}{quote(f'matrix/{name}/matrix.md')}", tmp_path / "profile")
    assert "| 1 | 1 | calm | constant 5 ms | 1 | none | valid | passed | none |" in table
    assert "| invalid |" in table.split("| 2 | 1 | kill |")[1].splitlines()[0]


def test_a_store_that_is_not_there_or_a_taken_port_is_refused_with_254(tmp_path, server):
    done = subprocess.run([installed_script("maelstrom-kafka-test"), "serve", str(tmp_path / "missing")],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 254 and "no such directory" in done.stderr
    port = server.rsplit(":", 1)[1].rstrip("/")
    done = subprocess.run([installed_script("maelstrom-kafka-test"), "serve", str(tmp_path), "--host", "127.0.0.1",
                           "--port", port], capture_output=True, text=True, timeout=30)
    assert done.returncode == 254 and "cannot listen" in done.stderr, done

