"""`maelstrom-kafka-test check PATH`: judges a stored history (a run directory, this runner's
history.jsonl or history.edn, or Maelstrom's own history.edn) without running anything."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kafka_node import argtypes
from kafka_node.maelstrom import exit_status, report
from kafka_node.maelstrom.checker import Verdict, check, with_stricter
from kafka_node.maelstrom.edn_history import read_edn
from kafka_node.maelstrom.history import HistoryError, Op, read_jsonl
from kafka_node.maelstrom.hostile import HOSTILE_ACCEPTED
from kafka_node.maelstrom.stricter import ABORTED, UNKNOWN_DESTINATION


def with_runner_findings(verdict: Verdict, aborted: str | None, hostile_accepted: list[dict],
                         unknown_destinations: list[dict]) -> Verdict:
    """The verdict, with what only the runner saw: an aborted test, hostile input accepted,
    messages to an id that no client, node or service has (Maelstrom's network refuses them,
    and stops reading the node that sent one)."""
    verdict = with_stricter(verdict, HOSTILE_ACCEPTED, hostile_accepted)
    verdict = with_stricter(verdict, UNKNOWN_DESTINATION, unknown_destinations)
    return with_stricter(verdict, ABORTED, [{"reason": aborted}] if aborted else [])


def parse_check_args(argv: list[str]) -> argparse.Namespace:
    parser = exit_status.Parser(
        prog="maelstrom-kafka-test check",
        description=(
            "Judge a stored kafka history without running anything: Maelstrom's verdict and our "
            "stricter checks, as after a run. PATH is a run directory (e.g. store/latest), this "
            "runner's history.jsonl, or Maelstrom's own history.edn (from its store directory)."
        ),
        epilog=(
            "A run directory is judged from its history.jsonl (or the history.edn beside it), with the "
            "findings only the runner could see (an aborted test, hostile input accepted) and the "
            "commit check and availability settings taken from its results.json. Maelstrom's own "
            "history.edn records neither the offsets a poll asked for nor committed offsets, so the "
            "stricter checks that need them are skipped. "
            "Exit status: 0 if both verdicts pass, 1 if either fails, 2 if Maelstrom's verdict is "
            "unknown and nothing failed, 254 if the history cannot be read."
        ),
    )
    parser.add_argument("path", metavar="PATH", help="run directory, history.jsonl or history.edn")
    parser.add_argument("--availability", type=argtypes.availability, default=None, metavar="total|FRACTION",
                        help="also check, as Maelstrom's availability checker, that this fraction of operations "
                             "succeeded, or all of them (default: the run's own setting, if any)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (valid, maelstrom, stricter, anomalies, ...) instead of a summary")
    return parser.parse_args(argv)


def check_main(argv: list[str]) -> int:
    args = parse_check_args(argv)
    try:
        path, ops, run_results = read_stored(Path(args.path))
    except (HistoryError, OSError) as error:
        print(f"maelstrom-kafka-test check: {error}", file=sys.stderr)
        return exit_status.BAD_ARGUMENTS
    run = run_results.get("run", {}) if run_results else {}
    availability = args.availability if args.availability is not None else run.get("availability")
    verdict = check(ops, committed_offsets=bool(run.get("commit_check")), availability=availability)
    if run_results:
        found = run_results.get("anomalies", {})
        verdict = with_runner_findings(verdict, run_results.get("aborted"), found.get(HOSTILE_ACCEPTED, []),
                                       found.get(UNKNOWN_DESTINATION, []))
    data = {"history": str(path), "operations": len(ops), **report.verdict_data(verdict)}
    if args.json:
        print(json.dumps(data, ensure_ascii=False))
    else:
        print("\n".join([f"history: {path} ({len(ops)} operations)", "",
                         *report.stats_table(data["stats"]), "", *report.verdict_lines(data)]))
    return exit_status.of(verdict.validity)


def read_stored(path: Path) -> tuple[Path, list[Op], dict | None]:
    """The history file PATH names, its operations, and the results.json of the run directory
    it names (if any)."""
    if path.is_dir():
        candidates = [path / "history.jsonl", path / "history.edn"]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise HistoryError(path, None, "a directory with neither history.jsonl nor history.edn")
        path = found
    elif not path.exists():
        raise HistoryError(path, None, "no such file or directory")
    run_results = None
    results = path.parent / "results.json"
    if path.name in ("history.jsonl", "history.edn") and results.is_file():
        try:
            run_results = json.loads(results.read_text())
        except ValueError as error:
            raise HistoryError(results, None, f"not JSON: {error}") from None
    return path, read_edn(path) if _is_edn(path) else read_jsonl(path), run_results


def _is_edn(path: Path) -> bool:
    """history.edn by its name, or by its first character (`{:`, `#`, `[`) otherwise."""
    if path.suffix in (".edn", ".jsonl"):
        return path.suffix == ".edn"
    with open(path, "rb") as stream:
        head = stream.read(64).lstrip()
    return head[:1] in (b"#", b"[") or head[:2] == b"{:"
