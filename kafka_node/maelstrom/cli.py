"""The `maelstrom-kafka-test` command: `test` (the default) runs the workload with Maelstrom's
flags into a run directory under --store; `check PATH` judges a stored history; `serve` shows
the store on a web page. The work is done by `runner`, `checker`, `run_files` and `web`."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shlex
import shutil
import signal
import sys
import traceback
from datetime import datetime
from pathlib import Path

from kafka_node import argtypes
from kafka_node.maelstrom import exit_status, report, run_files, web
from kafka_node.maelstrom.check_command import check_main, with_runner_findings
from kafka_node.maelstrom.checker import MAELSTROM_TYPES, check
from kafka_node.maelstrom.db_nemesis import NODE_SPECS, targets_of
from kafka_node.maelstrom.hostile import HOSTILE_ACCEPTED, HOSTILE_CLIENT, write_lines
from kafka_node.maelstrom.nemesis_package import NEMESIS_INTERVAL, faults_of
from kafka_node.maelstrom.nemesis_package import described as faults_described
from kafka_node.maelstrom.network import RPC_TIMEOUT
from kafka_node.maelstrom.process import NodeStartError
from kafka_node.maelstrom.progress import close_run_log, open_run_log
from kafka_node.maelstrom.runner import FINAL_TIME_LIMIT, RunConfig, Runner, RunRecord
from kafka_node.maelstrom.stricter import STRICTER_TYPES


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Flags, and the node's own arguments (everything after `--`)."""
    node_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, node_args = argv[:cut], argv[cut + 1:]
    parser = exit_status.Parser(
        prog="maelstrom-kafka-test",
        usage="%(prog)s --bin PATH [options] [-- node args...]",
        description=(
            "Run Jepsen Maelstrom's kafka workload against a node program and check the history, "
            "as `maelstrom test -w kafka` does: each node is a child process spoken to in JSON lines "
            "on its stdin/stdout, on a simulated network that also carries messages between nodes and "
            "to Maelstrom's services (lin-kv, seq-kv, lww-kv, lin-tso); each node runs in a directory of "
            "its own, nodes/<node id>/ in the run directory (a relative path it is given lands there), and "
            "its stderr goes to node-logs/<node id>.log."
        ),
        epilog=(
            "Writes store/kafka/<time>/ (results.json and results.edn, history.jsonl, history.edn and "
            "history.txt, timeline.html, messages.svg, latency-raw.png, latency-quantiles.png, rate.png, "
            "jepsen.log, node-logs/, memory.csv, and hostile.jsonl with --hostile-every) and points "
            "store/latest at it; `maelstrom-kafka-test serve` shows the store in a browser. Two verdicts: "
            "Maelstrom's (the anomalies Maelstrom's kafka checker reports: "
            f"{', '.join(MAELSTROM_TYPES)}; or 'unknown' where its analysis would stop with an error) and "
            f"our stricter checks ({', '.join(STRICTER_TYPES)}; committed-offset-regression only with "
            f"--restart-every, {HOSTILE_ACCEPTED} only with --hostile-every, see there). "
            "A node that prints anything but a message on stdout, or exits without being killed, "
            f"aborts the test. {exit_status.DESCRIBED} The history recorded until an interruption is "
            "still written. `maelstrom-kafka-test check --help` judges a stored history without running "
            "anything; `maelstrom-kafka-test serve --help` shows the store on a web page."
        ),
    )
    parser.add_argument("--bin", required=True, metavar="PATH", help="the node program to test")
    parser.add_argument("--node-count", type=argtypes.positive_int, default=1, metavar="N",
                        help="number of nodes, n0 ... n{N-1}; clients are bound to them round-robin (default 1)")
    parser.add_argument("--concurrency", default="2n", metavar="N|Nn",
                        help="client count: an integer, or Nn for N times the node count (default 2n)")
    parser.add_argument("--time-limit", type=argtypes.positive_float, default=20.0, metavar="SECONDS",
                        help="length of the main phase (default 20)")
    parser.add_argument("--rate", type=argtypes.positive_float, default=1000.0, metavar="OPS",
                        help="approximate operations per second over all clients (default 1000)")
    parser.add_argument("--latency", type=argtypes.non_negative_float, default=0.0, metavar="MS",
                        help="milliseconds added to every message between servers (nodes and services); "
                             "messages to and from clients have none, as in Maelstrom (default 0)")
    parser.add_argument("--max-writes-per-key", type=argtypes.positive_int, default=16, metavar="N",
                        help="most sends any one key receives (default 16)")
    parser.add_argument("--recovery-time", type=argtypes.non_negative_float, default=10.0, metavar="SECONDS",
                        help="pause between the main phase and the final polls (default 10)")
    parser.add_argument("--restart-every", type=argtypes.positive_float, default=None, metavar="SECONDS",
                        help="SIGKILL and restart the node (same arguments and directory) at random "
                             "moments about this far apart during the main phase (a node keeping its "
                             "log in a file must be given the same file each time, e.g. -- --db PATH). "
                             "Also checks that a committed offset listed by the node is never below a "
                             "commit acknowledged earlier: a rule stricter than Maelstrom's, which "
                             "accepts last-write-wins commits (see --no-commit-check)")
    parser.add_argument("--no-commit-check", action="store_true",
                        help="with --restart-every, skip the committed-offset check: for nodes whose "
                             "commits are last-write-wins, as Maelstrom allows")
    parser.add_argument("--nemesis", type=faults_of, default=frozenset(), metavar="FAULTS",
                        help="faults to inject, comma-separated, combined as Jepsen's nemesis package combines "
                             "them (e.g. kill,partition). partition, as Maelstrom's: cuts the network between "
                             "nodes (clients and services stay reachable) with Jepsen's partition specs (one node "
                             "isolated, a third, a majority, a ring of majorities), then heals it, in turn. kill "
                             "and pause go beyond Maelstrom, whose --nemesis accepts only partition; they follow "
                             "Jepsen's db package: kill SIGKILLs nodes (one, a minority, a third, a majority, all, "
                             "or a random set), which stay down, dropping what is sent to them, until the next "
                             "start restarts them (same command, same directory, init again); pause SIGSTOPs "
                             "nodes until the next resume (SIGCONT). Before the recovery pause, the network is "
                             "healed, then every node resumed, then every node started")
    parser.add_argument("--nemesis-interval", type=argtypes.positive_float, default=NEMESIS_INTERVAL,
                        metavar="SECONDS", help=f"mean seconds between two operations of one kind of fault "
                                                f"(partitions; kills and pauses) (default {NEMESIS_INTERVAL:g})")
    parser.add_argument("--availability", type=argtypes.availability, default=None, metavar="total|FRACTION",
                        help="also check, as Maelstrom's availability checker, that this fraction of operations "
                             "(0 to 1) completed ok, or all of them with total (default: no such check)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the workload's random choices")
    parser.add_argument("--store", default="store", metavar="DIR", help="where run directories go (default store/)")
    advanced = parser.add_argument_group("advanced (not Maelstrom flags)")
    advanced.add_argument("--rpc-timeout", type=argtypes.positive_float, default=RPC_TIMEOUT, metavar="SECONDS",
                          help=f"seconds a client waits for a reply before its operation is indeterminate "
                               f"and the client is replaced (default {RPC_TIMEOUT:g}, as Maelstrom)")
    advanced.add_argument("--hostile-every", type=argtypes.positive_float, default=None, metavar="SECONDS",
                          help=f"write one hostile line to the node's stdin at random moments about this far "
                               f"apart, from the main phase to the end: bytes that are not JSON, invalid UTF-8, "
                               f"truncated or deeply nested JSON, and invalid requests from client "
                               f"{HOSTILE_CLIENT} (unknown types, missing or mistyped fields, bad offsets and "
                               f"msg_ids). Replies to {HOSTILE_CLIENT} are counted by error code; one that is "
                               f"not an error accepted an invalid request and is flagged {HOSTILE_ACCEPTED}")
    advanced.add_argument("--lose-disk", action="store_true",
                          help="with --nemesis kill or --restart-every: each time a node is killed, delete its "
                               "files (everything in its directory, nodes/<node id>/ in the run directory) "
                               "before it starts again, as if its disk had been lost. Goes beyond both "
                               "Maelstrom and Jepsen's combined nemesis package. Give the node relative paths "
                               "(e.g. -- --db {node_id}.db): a file at an absolute path is out of its reach")
    advanced.add_argument("--nemesis-targets", type=targets_of, default=NODE_SPECS, metavar="SPECS",
                          help="the node specs kills and pauses draw their targets from, comma-separated, as "
                               "the :targets option of Jepsen's :kill and :pause (default: all of them: "
                               "random, one, minority-third, minority, majority, all); e.g. one, to kill or "
                               "pause a single node at a time")
    advanced.add_argument("--final-polls-together", action="store_true",
                          help="every client's first final poll (of every key, from offset 0) at the same "
                               "instant, where Jepsen's generator spaces them over 0-0.4 s: the heaviest moment "
                               "a node can be asked to serve. Goes beyond Maelstrom")
    args = parser.parse_args(argv)
    if args.lose_disk and "kill" not in args.nemesis and not args.restart_every:
        parser.error("--lose-disk needs --nemesis kill or --restart-every: it acts when a node is killed")
    return args, node_args


def concurrency_of(text: str, node_count: int) -> int:
    """`Nn` is N clients per node; a plain integer is the client count."""
    try:
        value = int(text[:-1]) * node_count if text.endswith("n") else int(text)
    except ValueError:
        raise ValueError(f"--concurrency must be an integer or Nn (e.g. 2n), got {text!r}") from None
    if value < 1:
        raise ValueError(f"--concurrency must come to at least 1 client, got {text!r}")
    return value


def node_program(bin_path: str) -> str:
    """The absolute path of --bin (looked up on PATH when it names no existing file)."""
    path = Path(bin_path)
    found = str(path.resolve()) if path.exists() else shutil.which(bin_path)
    if not found:
        raise ValueError(f"--bin {bin_path}: no such file")
    if not os.access(found, os.X_OK) or Path(found).is_dir():
        raise ValueError(f"--bin {bin_path}: not an executable file")
    return found


def new_run_dir(store: Path) -> Path:
    """store/kafka/<local time>/, with store/latest and store/kafka/latest pointing at it."""
    now = datetime.now().astimezone()
    stamp = now.strftime("%Y%m%dT%H%M%S.%f")[:-3] + now.strftime("%z")
    tests = store / "kafka"
    tests.mkdir(parents=True, exist_ok=True)
    run_dir, n = tests / stamp, 1
    while True:
        try:
            run_dir.mkdir()
            break
        except FileExistsError:
            n += 1
            run_dir = tests / f"{stamp}-{n}"
    for link, target in ((store / "latest", Path("kafka") / run_dir.name), (tests / "latest", Path(run_dir.name))):
        temporary = link.with_name(f".{link.name}.{os.getpid()}")
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(target)
        os.replace(temporary, link)
    return run_dir


def run_until_interrupted(runner: Runner) -> tuple[RunRecord, str | None]:
    """Run the test; on SIGINT or SIGTERM the node is still killed, and the record of what
    happened until then is returned with the reason the run was cut short."""

    async def running() -> RunRecord:
        task = asyncio.current_task()
        assert task is not None  # this coroutine runs as the loop's main task
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await runner.run()

    try:
        return asyncio.run(running()), None
    except (KeyboardInterrupt, asyncio.CancelledError):
        return runner.record, f"interrupted at {runner.history.seconds():.1f} s; the history until then was kept"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["check"]:
            return check_main(argv[1:])
        if argv[:1] == ["serve"]:
            return web.serve_main(argv[1:])
        return test_main(argv[1:] if argv[:1] == ["test"] else argv)
    except Exception:  # the runner's own failure: said as such, with Jepsen's status
        print("maelstrom-kafka-test: the runner itself failed (a bug of the runner, not of the node):\n"
              + traceback.format_exc(), file=sys.stderr)
        return exit_status.CRASHED


def test_main(argv: list[str]) -> int:
    args, node_args = parse_args(argv)
    try:
        concurrency = concurrency_of(args.concurrency, args.node_count)
        program = node_program(args.bin)
    except ValueError as error:
        print(f"maelstrom-kafka-test: {error}", file=sys.stderr)
        return exit_status.BAD_ARGUMENTS
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    run_dir = new_run_dir(Path(args.store))
    command = [program, *node_args]
    config = RunConfig(
        command=command, node_dirs=run_dir / "nodes", log_dir=run_dir / "node-logs", concurrency=concurrency,
        time_limit=args.time_limit, rate=args.rate, max_writes_per_key=args.max_writes_per_key,
        recovery_time=args.recovery_time, restart_every=args.restart_every, seed=seed,
        rpc_timeout=args.rpc_timeout, hostile_every=args.hostile_every, memory_path=run_dir / "memory.csv",
        node_count=args.node_count, latency=args.latency / 1000, nemesis=args.nemesis,
        nemesis_interval=args.nemesis_interval, lose_disk=args.lose_disk,
        nemesis_targets=args.nemesis_targets, final_polls_together=args.final_polls_together,
    )
    config.log_dir.mkdir()
    commit_check = bool(args.restart_every) and not args.no_commit_check
    described = {
        "command": shlex.join(command), "node_count": args.node_count, "latency_ms": args.latency,
        "concurrency": concurrency,
        "time_limit": args.time_limit, "rate": args.rate, "max_writes_per_key": args.max_writes_per_key,
        "recovery_time": args.recovery_time, "final_time_limit": FINAL_TIME_LIMIT,
        "restart_every": args.restart_every, "commit_check": commit_check, "rpc_timeout": args.rpc_timeout,
        "hostile_every": args.hostile_every, "nemesis": faults_described(args.nemesis),
        "nemesis_interval": args.nemesis_interval, "lose_disk": args.lose_disk,
        "nemesis_targets": [spec or "random" for spec in args.nemesis_targets],
        "availability": args.availability, "final_polls_together": args.final_polls_together,
        "seed": seed, "cwd": os.getcwd(), "node_dirs": "nodes/<node id>",
    }
    run_log = open_run_log(run_dir / "jepsen.log")
    try:
        return run_and_report(Runner(config), run_dir, described)
    finally:
        close_run_log(run_log)


def run_and_report(runner: Runner, run_dir: Path, described: dict) -> int:
    """Run the test, write the run directory's files and print the summary; the exit status."""
    report.log_settings(described)
    try:
        record, interrupted = run_until_interrupted(runner)
    except NodeStartError as error:
        print(f"maelstrom-kafka-test: the node could not be started: {error} (see {runner.config.log_dir})",
              file=sys.stderr)
        run_files.write_results({"valid": False, "aborted": f"the node could not be started: {error}",
                                 "run": described}, run_dir)
        return exit_status.CRASHED
    if interrupted:
        record.aborted = record.aborted or interrupted
        print(f"maelstrom-kafka-test: {interrupted}; the node was killed (partial run in {run_dir})",
              file=sys.stderr)
    ops = record.history.ops
    run_files.write_history(ops, run_dir)
    verdict = check(ops, committed_offsets=described["commit_check"], availability=described["availability"])
    verdict = with_runner_findings(verdict, record.aborted, record.hostile.accepted if record.hostile else [],
                                   record.net.unknown_destinations)
    notes = []
    if note := run_files.write_pictures(ops, record.net.journal, run_dir):
        notes.append(note)
    if note := record.memory.get("note"):
        notes.append(note)
    described |= {"phases": record.phases, "restarts": record.restarts, "node_exits": record.node_exits,
                  "net_counts": record.net_counts, "memory": record.memory, "notes": notes}
    if runner.partitioner:
        described["partitions"] = report.partitions_data(record.partitions, record.net.dropped)
    described |= record.db_faults
    if described["lose_disk"]:
        described["disk_losses"] = report.disk_losses_data(record.disk_losses)
    if record.hostile:
        write_lines(record.hostile, run_dir / "hostile.jsonl")
        described["hostile"] = record.hostile.described()
    perf = report.performance(ops, record.latencies.by_rpc, record.phases)
    data = report.results(verdict, perf, described, record.aborted)
    data["net"] = record.net.stats.described(sum(1 for op in ops if op.type == "invoke"))
    run_files.write_results(data, run_dir)
    summary = report.summary(data, run_dir)
    report.log_summary(summary)
    print(summary)
    if interrupted:
        return exit_status.INTERRUPTED
    return exit_status.of(data["validity"])


if __name__ == "__main__":
    sys.exit(main())
