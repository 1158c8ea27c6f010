"""`maelstrom-kafka-test serve`: the store on a web page, as `maelstrom serve` shows it: the runs
newest first, coloured by verdict, each linking to its files (served as they are), then the matrices."""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import os
import re
import sys
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kafka_node import argtypes
from kafka_node.maelstrom import exit_status
from kafka_node.maelstrom.matrix_files import MATRICES
from kafka_node.maelstrom.run_files import FILES

#: Jepsen's web colours for :valid? true, :unknown, false, and a run with no results yet.
COLORS = {"valid": "#6DB6FE", "unknown": "#FFAA26", "invalid": "#FEB5DA", "incomplete": "#eaeaea"}
#: Files shown as text in the browser rather than downloaded.
TEXT_TYPES = {".edn": "text/plain", ".jsonl": "text/plain", ".log": "text/plain", ".txt": "text/plain",
              ".csv": "text/plain", ".md": "text/plain", ".json": "application/json"}
#: A run directory's name: its local start time (and a -N when two began in the same millisecond).
RUN_NAME = re.compile(r"\d{8}T\d{6}\.\d{3}[+-]\d{4}")
STYLE = """
body { font-family: Helvetica, Arial, sans-serif; margin: 1em 2em; }
table { border-collapse: collapse; }
th, td { padding: 4px 10px; text-align: left; border-bottom: 1px solid #ddd; }
td.valid { font-weight: bold; }
a { color: #1a4f8a; }
"""


@dataclass
class Run:
    test: str  # where it is in the store: kafka, or restarts/kafka for a store within it
    name: str
    path: Path
    verdict: str  # valid, invalid, unknown or incomplete
    summary: str  # a few words on what the run was

    @property
    def href(self) -> str:
        return urllib.parse.quote(f"/{self.test}/{self.name}/")


def verdict_of(results: Any) -> str:
    validity = results.get("validity", results.get("valid")) if isinstance(results, dict) else None
    if validity is True:
        return "valid"
    return "unknown" if validity == "unknown" else "invalid"


def run_of(store: Path, path: Path) -> Run:
    """The run in directory `path` of the store, judged by its results.json (incomplete
    without one, or with one that cannot be read)."""
    results, verdict, summary = path / "results.json", "incomplete", ""
    if results.is_file():
        try:
            data = json.loads(results.read_text())
            verdict, summary = verdict_of(data), _summary(data)
        except (ValueError, OSError, AttributeError, TypeError, KeyError):
            verdict = "incomplete"
    return Run(path.parent.relative_to(store).as_posix(), path.name, path, verdict, summary)


@dataclass
class Matrix:
    where: str  # where it is in the store: matrix, or faults/matrix for a store within it
    name: str
    path: Path
    summary: str  # how many of its cells were valid

    @property
    def href(self) -> str:
        return urllib.parse.quote(f"/{self.where}/{self.name}/")


def _stamped(store: Path) -> list[Path]:
    """Every folder of the store named after a time, however deep (links such as latest left out)."""
    found = []
    for top, folders, _ in os.walk(store):  # links to folders are not followed
        for name in list(folders):
            if RUN_NAME.match(name):
                folders.remove(name)  # a run's own folders (node-logs), or a matrix's, hold no runs
                if not (Path(top) / name).is_symlink():
                    found.append(Path(top) / name)
    return found


def runs(store: Path) -> list[Run]:
    """Every run directory of the store, however deep (store/kafka/<run>/, and a store kept
    within it such as store/restarts/kafka/<run>/), newest first."""
    found = [run_of(store, path) for path in _stamped(store) if path.parent.name != MATRICES]
    return sorted(found, key=lambda run: _started(run.path), reverse=True)


def matrix_of(store: Path, path: Path) -> Matrix:
    """The matrix in directory `path` of the store, summed up from its matrix.json."""
    summary = "no matrix.json yet"
    with contextlib.suppress(ValueError, OSError, AttributeError, TypeError, KeyError):
        data = json.loads((path / "matrix.json").read_text())
        cells = data["cells"]
        valid = sum(1 for cell in cells if cell.get("validity") is True)
        summary = f"{valid} of {len(cells)} cells valid"
        if data.get("cells_planned", len(cells)) > len(cells):
            summary += f" ({data['cells_planned']} planned{', interrupted' if data.get('interrupted') else ''})"
    return Matrix(path.parent.relative_to(store).as_posix(), path.name, path, summary)


def matrices(store: Path) -> list[Matrix]:
    """Every matrix of the store (<store>/matrix/<time>/, however deep), newest first."""
    found = [matrix_of(store, path) for path in _stamped(store) if path.parent.name == MATRICES]
    return sorted(found, key=lambda matrix: _started(matrix.path), reverse=True)


def _started(path: Path) -> float:
    """When a run or matrix began: the time its directory is named after, else its last change."""
    if (stamp := RUN_NAME.match(path.name)) is not None:
        with contextlib.suppress(ValueError):
            return datetime.strptime(stamp.group(0), "%Y%m%dT%H%M%S.%f%z").timestamp()
    return path.stat().st_mtime


def _summary(data: dict[str, Any]) -> str:
    run: dict[str, Any] = data["run"] if isinstance(data.get("run"), dict) else {}
    parts = [f"{run['node_count']} node{'s' if run.get('node_count') != 1 else ''}"] if "node_count" in run else []
    if run.get("nemesis"):
        parts.append(f"nemesis {run['nemesis']}")
    if run.get("restart_every"):
        parts.append("restarts")
    if data.get("anomaly_types"):
        parts.append(", ".join(data["anomaly_types"]))
    if data.get("aborted"):
        parts.append("aborted")
    return "; ".join(parts)


def _link(run: Run | Matrix, name: str, text: str | None = None) -> str:
    if not (run.path / name).exists():
        return ""
    return f'<a href="{run.href}{urllib.parse.quote(name)}">{html.escape(text or name)}</a>'


def matrices_table(store: Path) -> str:
    """The index's list of fault matrices, each linking to its table and data ("" without any)."""
    rows = []
    for matrix in matrices(store):
        links = " ".join(link for link in (_link(matrix, "matrix.md", "table"), _link(matrix, "matrix.json", "data"),
                                           _link(matrix, "cells/", "outputs")) if link)
        rows.append(f'<tr><td>{html.escape(matrix.where)}</td><td><a href="{matrix.href}">{html.escape(matrix.name)}'
                    f'</a></td><td class="cells">{html.escape(matrix.summary)}</td><td>{links}</td></tr>')
    if not rows:
        return ""
    return ("<h2>Fault matrices</h2><table><tr><th>Name</th><th>Time</th><th>Cells</th><th>Files</th></tr>"
            + "\n".join(rows) + "</table>")


def index_page(store: Path) -> str:
    rows = []
    for run in runs(store):
        links = [_link(run, name, text) for name, text in (
            ("results.edn", "results"), ("history.txt", "history"), ("timeline.html", "timeline"),
            ("messages.svg", "messages"), ("latency-raw.png", "latency"), ("rate.png", "rate"),
            ("jepsen.log", "log"))]
        rows.append(f'<tr><td>{html.escape(run.test)}</td><td><a href="{run.href}">{html.escape(run.name)}</a></td>'
                    f'<td class="valid" style="background:{COLORS[run.verdict]}">{run.verdict}</td>'
                    f'<td>{html.escape(run.summary)}</td><td>{" ".join(link for link in links if link)}</td></tr>')
    body = ("<table><tr><th>Name</th><th>Time</th><th>Valid?</th><th>What</th><th>Files</th></tr>"
            + "\n".join(rows) + "</table>") if rows else f"<p>No runs in {html.escape(str(store))} yet.</p>"
    return _page("kafka-node runs", f"<h1>kafka-node runs</h1>\n{body}\n{matrices_table(store)}")


def run_page(run: Run) -> str:
    items = []
    for name, what in FILES.items():
        if (run.path / name).exists():
            items.append(f"<li>{_link(run, name + ('/' if (run.path / name).is_dir() else ''), name)}: "
                         f"{html.escape(what)}</li>")
    heading = (f'<h1>{html.escape(run.test)} {html.escape(run.name)} '
               f'<span style="background:{COLORS[run.verdict]};padding:2px 8px">{run.verdict}</span></h1>')
    return _page(f"{run.test} {run.name}", f'{heading}<p>{html.escape(run.summary)}</p><ul>{"".join(items)}</ul>'
                                            '<p><a href="/">all runs</a></p>')


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>{body}</body></html>\n")


class StoreHandler(SimpleHTTPRequestHandler):
    """The index at /, a page per run at /<test>/<run>/, every other path a file of the store (a
    matrix's directory listed as it is)."""

    def __init__(self, *args: Any, store: Path, **kwargs: Any) -> None:
        self.store = store
        super().__init__(*args, directory=str(store), **kwargs)

    def do_GET(self) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        parts = [part for part in path.split("/") if part]
        if not parts:
            return self._send_html(index_page(self.store))
        if path.endswith("/") and ".." not in parts:
            folder = self.store.joinpath(*parts)
            target = folder.resolve()
            if (folder.is_dir() and RUN_NAME.match(target.name) and target.parent.name != MATRICES
                    and target.is_relative_to(self.store)):
                return self._send_html(run_page(run_of(self.store, target)))  # latest: the run it names
        return super().do_GET()

    def guess_type(self, path: Any) -> str:
        suffix = Path(str(path)).suffix
        if suffix in TEXT_TYPES:
            return TEXT_TYPES[suffix] + "; charset=utf-8"
        return super().guess_type(path)

    def _send_html(self, page: str) -> None:
        body = page.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def parse_serve_args(argv: list[str]) -> argparse.Namespace:
    parser = exit_status.Parser(
        prog="maelstrom-kafka-test serve",
        description="Show the store's runs on a web page, as `maelstrom serve` does: newest first, coloured by "
                    "verdict (blue valid, pink invalid, orange unknown, grey without results), each with its "
                    "results, history, timeline, message diagram, plots and logs; then the fault matrices of "
                    "`maelstrom-kafka-test matrix` (store/matrix/<time>/), newest first, each with its count of "
                    "valid cells and a link to its table (matrix.md) and data (matrix.json).")
    parser.add_argument("store", nargs="?", default="store", metavar="STORE", help="the store directory (default store/)")
    parser.add_argument("--host", "-b", default="0.0.0.0", help="address to listen on (default 0.0.0.0, as Maelstrom)")
    parser.add_argument("--port", "-p", type=argtypes.non_negative_int, default=8080,
                        help="port to listen on; 0 picks a free one (default 8080)")
    return parser.parse_args(argv)


def serve_main(argv: list[str]) -> int:
    args = parse_serve_args(argv)
    store = Path(args.store)
    if not store.is_dir():
        print(f"maelstrom-kafka-test serve: {store}: no such directory", file=sys.stderr)
        return exit_status.BAD_ARGUMENTS
    try:
        server = ThreadingHTTPServer((args.host, args.port), partial(StoreHandler, store=store.resolve()))
    except OSError as error:
        print(f"maelstrom-kafka-test serve: cannot listen on {args.host}:{args.port}: {error.strerror}",
              file=sys.stderr)
        return exit_status.BAD_ARGUMENTS
    host, port = str(server.server_address[0]), server.server_address[1]
    print(f"Listening on http://{host}:{port}/ (the runs of {store})", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return exit_status.VALID
