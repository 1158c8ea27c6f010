"""The `maelstrom-kafka-bench` command: `load` runs one load and prints what it measured;
`suite` measures the whole table of issue 4 and prints it as Markdown."""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import msgspec

from kafka_node import argtypes
from kafka_node.bench import report, rows, suite
from kafka_node.bench.child import NodeFailure
from kafka_node.bench.load import LoadSpec, run_load
from kafka_node.bench.workload import Workload, parse_mix

EXIT_OK = 0
EXIT_FAILED = 1  # wrong or missing replies, or a measurement that could not be made
EXIT_USAGE = 2


def installed_script(name: str) -> str:
    """A console script installed beside the running Python, else found on PATH, else `name`."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name) or name


def trivial_node_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "kafka_node.bench.trivial_node", *args]


def naive_node_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "kafka_node.bench.naive_node", *args]


def _mix(text: str) -> dict[str, float]:
    try:
        return parse_mix(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="maelstrom-kafka-bench",
        description="Benchmark a Maelstrom kafka node through its stdin/stdout: one pipelined load "
                    "(`load`), or the whole table of targets (`suite`).",
    )
    commands = top.add_subparsers(dest="command", required=True)

    load = commands.add_parser(
        "load", help="one closed-loop load run against a node",
        description="Start a node, send init, then keep --in-flight requests outstanding (closed loop: "
                    "each reply is followed by a new request) for --warmup seconds unmeasured and then "
                    "--duration seconds (or --requests replies) measured. Every reply is checked: its "
                    "in_reply_to must name a request awaiting a reply and its type must be that "
                    "request's *_ok; anything else is counted as an error.",
        epilog="Exit status: 0 when every reply was the expected one, 1 otherwise, 2 for bad flags "
               "or a node that did not start or answer init.",
    )
    node = load.add_argument_group("the node")
    node.add_argument("--bin", default=None, metavar="PATH",
                      help="node program (default: the installed maelstrom-kafka)")
    which = node.add_mutually_exclusive_group()
    which.add_argument("--trivial", action="store_true",
                       help="run against the trivial node that stores nothing (the generator's ceiling)")
    which.add_argument("--naive", action="store_true",
                       help="run against the naive node: stdlib sqlite3, one transaction and one fsync per request")
    node.add_argument("--node-args", default="", metavar="ARGS",
                      help="arguments for the node, one shell-quoted string, e.g. '--durability off'")
    node.add_argument("--db", default=None, metavar="PATH",
                      help="pass --db PATH to the node (default for the installed maelstrom-kafka: a fresh "
                           "file in a temporary directory, removed afterwards; for another --bin: none)")
    node.add_argument("--node-log", default=None, metavar="PATH", help="append the node's stderr here (default: discarded)")
    work = load.add_argument_group("the load")
    work.add_argument("--in-flight", type=argtypes.positive_int, default=64, metavar="N",
                      help="requests outstanding at once (default 64)")
    work.add_argument("--mix", type=_mix, default=parse_mix("send=1"), metavar="NAME=W,...",
                      help="weights of request types: send, poll, commit (commit_offsets), list "
                           "(list_committed_offsets); default send=1,poll=0,commit=0")
    work.add_argument("--keys", type=argtypes.positive_int, default=100, metavar="N",
                      help='keys "0".."N-1", chosen uniformly (default 100)')
    work.add_argument("--poll-keys", type=argtypes.positive_int, default=1, metavar="N",
                      help="keys named by each poll and list request (default 1)")
    work.add_argument("--poll-from", type=argtypes.non_negative_int, default=0, metavar="OFFSET",
                      help="offset every poll asks from (default 0)")
    work.add_argument("--msg-bytes", type=argtypes.non_negative_int, default=8, metavar="N",
                      help="length of the JSON string sent as each message (default 8)")
    work.add_argument("--duration", type=argtypes.positive_float, default=None, metavar="SECONDS",
                      help="measured seconds after the warm-up (default 5, or unlimited with --requests)")
    work.add_argument("--requests", type=argtypes.positive_int, default=None, metavar="N", help="stop after N measured replies")
    work.add_argument("--warmup", type=argtypes.non_negative_float, default=1.0, metavar="SECONDS",
                      help="seconds of unmeasured load first (default 1)")
    work.add_argument("--seed", type=int, default=0, help="seed of the request stream (default 0)")
    work.add_argument("--reply-timeout", type=argtypes.positive_float, default=10.0, metavar="SECONDS",
                      help="give up after this long without any reply (default 10)")
    load.add_argument("--json", action="store_true", help="print the result as JSON instead of text")

    whole = commands.add_parser(
        "suite", help="measure the whole table of targets and print it as Markdown",
        description="Measure every figure of the performance targets, each beside its baseline "
                    "measured in the same run, print the table as Markdown on stdout (progress on "
                    "stderr) and write it, with every load run's details, as JSON.",
        epilog="Exit status: 0 when every figure was measured (whether or not it meets its target), "
               "1 when a measurement failed (a node that did not start, wrong or missing replies).",
    )
    whole.add_argument("--bin", default=None, metavar="PATH", help="node program (default: the installed maelstrom-kafka)")
    whole.add_argument("--quick", action="store_true", help="shorter loads and seed runs, for a first look (less precise)")
    whole.add_argument("--seed-time-limit", type=argtypes.positive_float, default=None, metavar="SECONDS",
                       help=f"time limit of the two seed-workload runs (default {suite.SEED_TIME_LIMIT:g}, "
                            f"{suite.QUICK_SEED_TIME_LIMIT:g} with --quick)")
    whole.add_argument("--out", default="store/bench/results.json", metavar="PATH",
                       help="where the JSON results go (default store/bench/results.json); the Markdown "
                            "table is written beside it, with the suffix .md")
    whole.add_argument("--cache-dir", default="store/bench", metavar="DIR",
                       help="where the big synthetic log is kept between runs (default store/bench)")
    whole.add_argument("--doc", default=None, metavar="PATH",
                       help=f"also put the table and its footnote into this Markdown file, between the lines "
                            f"{report.TABLE_START} and {report.TABLE_END} (make bench: docs/performance.md)")
    return top


def load_spec(args: argparse.Namespace, db_dir: str | None) -> LoadSpec:
    if args.trivial:
        command = trivial_node_command(*shlex.split(args.node_args))
    elif args.naive:
        command = naive_node_command("--db", args.db or str(Path(db_dir or ".") / "naive.db"))
    else:
        command = [args.bin or installed_script("maelstrom-kafka")]
        command += shlex.split(args.node_args)
        if args.db:
            command += ["--db", args.db]
        elif db_dir is not None:
            command += ["--db", str(Path(db_dir) / "log.db")]
    duration = args.duration if args.duration is not None else (None if args.requests else 5.0)
    return LoadSpec(
        command=command,
        workload=Workload(mix=args.mix, keys=args.keys, poll_keys=args.poll_keys, poll_from=args.poll_from,
                          msg_bytes=args.msg_bytes, seed=args.seed),
        in_flight=args.in_flight, duration=duration, requests=args.requests, warmup=args.warmup,
        reply_timeout=args.reply_timeout, stderr_path=args.node_log,
    )


def run_load_command(args: argparse.Namespace) -> int:
    fresh_db = not (args.trivial or args.bin or args.db)
    with tempfile.TemporaryDirectory(prefix="kafka-bench-") as db_dir:
        spec = load_spec(args, db_dir if fresh_db else None)
        try:
            result = run_load(spec)
        except NodeFailure as failure:
            print(f"maelstrom-kafka-bench: {failure}", file=sys.stderr)
            return EXIT_USAGE
    print(msgspec.json.format(msgspec.json.encode(result)).decode() if args.json else report.describe_load(result))
    return EXIT_OK if result.ok else EXIT_FAILED


def run_suite_command(args: argparse.Namespace) -> int:
    settings = suite.Settings.chosen(
        node=args.bin or installed_script("maelstrom-kafka"),
        runner=installed_script("maelstrom-kafka-test"),
        trivial=trivial_node_command(),
        naive=naive_node_command(),
        quick=args.quick,
        seed_time_limit=args.seed_time_limit,
        cache_dir=Path(args.cache_dir),
    )
    outcome = suite.run(settings)
    outcome.rows = rows.table(outcome)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(msgspec.json.format(msgspec.json.encode(outcome.as_data())) + b"\n")
    table = f"{report.markdown_table(outcome.rows)}\n\n{outcome.footnote()}\n"
    out.with_suffix(".md").write_text(table)
    print(table, end="", flush=True)
    if args.doc:
        doc = Path(args.doc)
        doc.write_text(report.with_table(doc.read_text(), table))
        print(f"maelstrom-kafka-bench: the table in {doc} is replaced by this run's", file=sys.stderr)
    for failure in outcome.failures:
        print(f"maelstrom-kafka-bench: {failure}", file=sys.stderr)
    print(f"maelstrom-kafka-bench: results written to {out} and {out.with_suffix('.md')}", file=sys.stderr)
    return EXIT_FAILED if outcome.failures else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "load":
        return run_load_command(args)
    return run_suite_command(args)


if __name__ == "__main__":
    sys.exit(main())
