"""The `maelstrom-kafka-test` command: `test` (the default) runs the workload with Maelstrom's
flags into a run directory under --store; `check PATH` judges a stored history; `serve` shows
the store on a web page. The work is done by `runner`, `checker`, `run_files` and `web`."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shlex
import signal
import sys
import traceback
from pathlib import Path

from kafka_node.maelstrom import exit_status, report, run_files, run_flags, web
from kafka_node.maelstrom.check_command import check_main, with_runner_findings
from kafka_node.maelstrom.checker import check
from kafka_node.maelstrom.hostile import write_lines
from kafka_node.maelstrom.matrix import matrix_main
from kafka_node.maelstrom.nemesis_package import described as faults_described
from kafka_node.maelstrom.process import NodeStartError
from kafka_node.maelstrom.progress import close_run_log, open_run_log
from kafka_node.maelstrom.run_flags import concurrency_of, node_program
from kafka_node.maelstrom.runner import FINAL_TIME_LIMIT, RunConfig, Runner, RunRecord


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Flags (declared in `run_flags`), and the node's own arguments (everything after `--`)."""
    argv, node_args = run_flags.split_node_args(argv)
    parser = run_flags.parser()
    return run_flags.checked(parser, parser.parse_args(argv)), node_args


def new_run_dir(store: Path) -> Path:
    """store/kafka/<local time>/, with store/latest and store/kafka/latest pointing at it."""
    run_dir = run_files.new_stamped_dir(store / "kafka")
    run_files.point(store / "latest", Path("kafka") / run_dir.name)
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
        if argv[:1] == ["matrix"]:
            return matrix_main(argv[1:])
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
        node_count=args.node_count, latency_ms=args.latency, latency_dist=args.latency_dist,
        log_net_send=args.log_net_send, log_net_recv=args.log_net_recv, log_stderr=args.log_stderr,
        nemesis=args.nemesis,
        nemesis_interval=args.nemesis_interval, lose_disk=args.lose_disk,
        nemesis_targets=args.nemesis_targets, final_polls_together=args.final_polls_together,
    )
    config.log_dir.mkdir()
    commit_check = bool(args.restart_every) and not args.no_commit_check
    described = {
        "command": shlex.join(command), "node_count": args.node_count, "latency_ms": args.latency,
        "latency_dist": args.latency_dist,
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
    data["net"] = record.net.described(sum(1 for op in ops if op.type == "invoke"))
    run_files.write_results(data, run_dir)
    summary = report.summary(data, run_dir)
    report.log_summary(summary)
    print(summary)
    if interrupted:
        return exit_status.INTERRUPTED
    return exit_status.of(data["validity"])


if __name__ == "__main__":
    sys.exit(main())
