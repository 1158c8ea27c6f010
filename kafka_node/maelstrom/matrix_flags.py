"""The flags of `maelstrom-kafka-test matrix`, declared as data: its axes, the test flags it passes
on to every cell, and --quick's sizes; `parse` reads them, refusing bad ones with Jepsen's 254."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from kafka_node import argtypes
from kafka_node.maelstrom import exit_status, run_flags
from kafka_node.maelstrom.db_nemesis import targets_of
from kafka_node.maelstrom.latency import DISTRIBUTIONS, refusal
from kafka_node.maelstrom.nemesis_package import NEMESIS_INTERVAL
from kafka_node.maelstrom.network import RPC_TIMEOUT
from kafka_node.maelstrom.run_flags import Flag, concurrency_of, node_program

#: Each fault of the matrix, as flags of the test command (calm first: the others' baseline).
FAULTS: dict[str, tuple[str, ...]] = {
    "calm": (),
    "partition": ("--nemesis", "partition"),
    "kill": ("--nemesis", "kill"),
    "pause": ("--nemesis", "pause"),
    "kill-disk": ("--nemesis", "kill", "--lose-disk"),
    "all": ("--nemesis", "partition,kill,pause", "--lose-disk"),
}

#: The faults that kill or pause nodes (--nemesis-targets applies to them).
KILLS_OR_PAUSES = frozenset({"kill", "pause", "kill-disk", "all"})
#: --quick's kills and pauses take less than half the nodes at a time: what a correct replicated
#: node must survive, where a full matrix draws from all of Jepsen's specs, every node at once too.
QUICK_TARGETS = "one,minority"
#: The sizes of a full matrix, and those --quick changes (a CI job of a few minutes); a flag
#: given explicitly wins over both.
DEFAULTS: dict[str, Any] = {"node_counts": (3, 5), "faults": tuple(FAULTS), "latency_dists": ("constant", "exponential"),
                            "seeds": (1, 2), "time_limit": 20.0, "recovery_time": 10.0,
                            "nemesis_interval": None, "nemesis_targets": None}  # None: the test command's own
QUICK: dict[str, Any] = {"node_counts": (3,), "seeds": (1,), "time_limit": 10.0, "recovery_time": 3.0,
                         "nemesis_interval": 3.0, "nemesis_targets": QUICK_TARGETS}


def list_of(parse_one: Callable[[str], Any], what: str, choices: tuple[str, ...] = ()) -> Callable[[str], tuple]:
    """A comma-separated list of values (repeats dropped, order kept), each read by `parse_one`."""

    def parse(text: str) -> tuple:
        values: list[Any] = []
        for item in (part.strip() for part in text.split(",")):
            if choices and item not in choices:
                raise argparse.ArgumentTypeError(f"unknown {what} {item!r}: choose among {', '.join(choices)}, "
                                                 f"separated by commas")
            try:
                value = parse_one(item)
            except (ValueError, argparse.ArgumentTypeError) as error:
                raise argparse.ArgumentTypeError(f"{what} {item!r}: {error}") from None
            if value not in values:
                values.append(value)
        return tuple(values)

    parse.__name__ = what  # argparse names a value it cannot read by its type's name
    return parse


def _sizes(name: str) -> str:
    key = name.lstrip("-").replace("-", "_")
    shown = ",".join(str(v) for v in DEFAULTS[key]) if isinstance(DEFAULTS[key], tuple) else f"{DEFAULTS[key]:g}"
    if key not in QUICK:
        return f"(default {shown})"
    quick = ",".join(str(v) for v in QUICK[key]) if isinstance(QUICK[key], tuple) else f"{QUICK[key]:g}"
    return f"(default {shown}; with --quick {quick})"


def _targets_text(text: str) -> str:
    """--nemesis-targets as the test command reads it, kept as given (it is passed on as text)."""
    targets_of(text)
    return text


def _as_test(name: str, default: Any, help: str) -> Flag:
    """The test command's flag of that name (its type and metavar), with the matrix's default and help."""
    flag = next(f for f in (*run_flags.MAELSTROM_FLAGS, *run_flags.OUR_FLAGS) if f.name == name)
    return Flag(name, {**flag.options, "default": default, "help": help})


AXES = (
    _as_test("--bin", None, "the node program to test"),
    Flag("--node-counts", {"type": list_of(argtypes.positive_int, "node count"), "default": None, "metavar": "N,...",
                           "help": f"the node counts, comma-separated {_sizes('--node-counts')}"}),
    Flag("--faults", {"type": list_of(str, "fault", tuple(FAULTS)), "default": None, "metavar": "FAULTS",
                      "help": f"the faults, comma-separated: calm (none), partition, kill, pause (--nemesis "
                              f"partition, kill, pause), kill-disk (--nemesis kill --lose-disk), all (--nemesis "
                              f"partition,kill,pause --lose-disk); calm is run first, as the others' baseline "
                              f"{_sizes('--faults')}"}),
    Flag("--latency-dists", {"type": list_of(str, "latency distribution", DISTRIBUTIONS), "default": None,
                             "metavar": "DISTS", "help": f"the latency distributions (--latency-dist), comma-separated "
                                                         f"among {', '.join(DISTRIBUTIONS)} {_sizes('--latency-dists')}"}),
    _as_test("--latency", 5, "the mean latency of every cell, whole milliseconds (--latency); uniform and "
                             "exponential need it above 0 (default 5)"),
    Flag("--seeds", {"type": list_of(int, "seed"), "default": None, "metavar": "SEED,...",
                     "help": f"the seeds, comma-separated (--seed) {_sizes('--seeds')}"}),
    Flag("--quick", {"action": "store_true",
                     "help": "a size for a CI job of a few minutes: node counts 3, seed 1, time limit 10 s, "
                             "recovery time 3 s, nemesis interval 3 s, kills and pauses of one node or a minority (each flag "
                             "given explicitly still wins)"}),
)

PASSED_ON = (
    _as_test("--time-limit", None, f"each cell's --time-limit, seconds {_sizes('--time-limit')}"),
    _as_test("--rate", 1000.0, "each cell's --rate, operations per second (default 1000)"),
    _as_test("--concurrency", "2n", "each cell's --concurrency: an integer, or Nn for N per node (default 2n)"),
    _as_test("--recovery-time", None, f"each cell's --recovery-time, seconds {_sizes('--recovery-time')}"),
    _as_test("--nemesis-interval", None, f"each faulted cell's --nemesis-interval, seconds (default the test "
                                         f"command's, {NEMESIS_INTERVAL:g}; with --quick 3, so that faults come and "
                                         f"go within its shorter runs)"),
    Flag("--nemesis-targets", {
        "type": _targets_text, "default": None, "metavar": "SPECS",
        "help": f"each faulted cell's --nemesis-targets, the node specs kills and pauses draw from (default the "
                f"test command's: all of Jepsen's; with --quick {QUICK_TARGETS})"}),
    _as_test("--rpc-timeout", None, f"each cell's --rpc-timeout, seconds (default the test command's, {RPC_TIMEOUT:g})"),
    _as_test("--store", "store", "where the runs go (store/kafka/<time>/, as the test command's) and the matrix "
                                 "(store/matrix/<time>/) (default store/)"),
)

DESCRIPTION = (
    "Run many tests of one node program, one after another, and report them in one table: every node count by "
    "every latency distribution by every fault by every seed, in that order. Each cell is the test command "
    "(`maelstrom-kafka-test test`) in a child process, kept in the store as a normal run."
)
EPILOG = (
    "Writes store/matrix/<time>/ (matrix.md, the table printed at the end; matrix.json, every cell's figures, "
    "command and run directory; cells/<n>.txt, each cell's output) and points store/matrix/latest at it. Per "
    "cell: both verdicts, the anomalies, the operations ok, the main phase's throughput and its ratio to the "
    "calm cell of the same node count, latency distribution and seed, and failover p50/p99: for each kill, the "
    "longest any key with a send invoked in the second before it waited, from the kill's completion, for a send "
    "invoked after it to complete ok (until the end of the main phase if none did). Exit status, the worst "
    "cell's: 255 if a cell's runner crashed or its node could not be started, else 1 if a cell is invalid or "
    "aborted, else 2 if one is unknown, else 0; 254 for bad arguments, before anything runs; 130 if interrupted "
    "(the cell under way is stopped, the table of those done still written)."
)


def parser() -> exit_status.Parser:
    built = exit_status.Parser(prog="maelstrom-kafka-test matrix", usage="%(prog)s --bin PATH [options] [-- node args...]",
                               description=DESCRIPTION, epilog=EPILOG)
    run_flags.add_flags(built, AXES)
    run_flags.add_flags(built.add_argument_group("passed on to each cell's test command"), PASSED_ON)
    return built


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The matrix's settings (sizes not given filled in from --quick or the defaults), and the
    node's own arguments (everything after `--`). Exits with 254 on bad arguments."""
    argv, node_args = run_flags.split_node_args(argv)
    built = parser()
    args = built.parse_args(argv)
    for name, default in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, QUICK.get(name, default) if args.quick else default)
    args.faults = tuple(sorted(args.faults, key=lambda fault: fault != "calm"))  # calm first, else as given
    for dist in args.latency_dists:
        if reason := refusal(dist, args.latency):
            built.error(reason)
    try:
        node_program(args.bin)
        for count in args.node_counts:
            concurrency_of(args.concurrency, count)
    except ValueError as error:
        built.error(str(error))
    return args, node_args
