"""The flags of `maelstrom-kafka-test test`, declared as data: Maelstrom's own, in its words where
they are its, then ours beyond it; `parser` builds the command's parser, and the checks they need."""

from __future__ import annotations

import argparse
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka_node import argtypes
from kafka_node.maelstrom import exit_status
from kafka_node.maelstrom.checker import MAELSTROM_TYPES
from kafka_node.maelstrom.db_nemesis import NODE_SPECS, targets_of
from kafka_node.maelstrom.hostile import HOSTILE_ACCEPTED, HOSTILE_CLIENT
from kafka_node.maelstrom.latency import DISTRIBUTIONS, refusal
from kafka_node.maelstrom.nemesis_package import NEMESIS_INTERVAL, faults_of
from kafka_node.maelstrom.network import RPC_TIMEOUT
from kafka_node.maelstrom.stricter import STRICTER_TYPES


@dataclass(frozen=True)
class Flag:
    """One flag: its name and argparse's keywords for it."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


MAELSTROM_FLAGS = (
    Flag("--bin", {"required": True, "metavar": "PATH", "help": "the node program to test"}),
    Flag("--workload", {"choices": ("kafka",), "default": "kafka", "metavar": "NAME", "aliases": ("-w",),
                        "help": "Maelstrom's workload: kafka, the only one this runner has (default kafka)"}),
    Flag("--node-count", {"type": argtypes.positive_int, "default": 1, "metavar": "N",
                          "help": "number of nodes, n0 ... n{N-1}; clients are bound to them round-robin (default 1)"}),
    Flag("--concurrency", {"default": "2n", "metavar": "N|Nn",
                           "help": "client count: an integer, or Nn for N times the node count (default 2n)"}),
    Flag("--time-limit", {"type": argtypes.positive_float, "default": 20.0, "metavar": "SECONDS",
                          "help": "length of the main phase (default 20)"}),
    Flag("--rate", {"type": argtypes.positive_float, "default": 1000.0, "metavar": "OPS",
                    "help": "approximate operations per second over all clients (default 1000)"}),
    Flag("--latency", {"type": argtypes.non_negative_int, "default": 0, "metavar": "MS",
                       "help": "mean milliseconds of network latency, in whole milliseconds as Maelstrom's: drawn "
                               "for every message between servers (nodes and services); messages to and from "
                               "clients have none (default 0)"}),
    Flag("--latency-dist", {"choices": DISTRIBUTIONS, "default": "constant",
                            "help": "the shape of the latencies drawn, as Maelstrom's: constant (always the mean), "
                                    "uniform (whole milliseconds from 0 to twice the mean, less one) or exponential "
                                    "(cut to whole milliseconds). Each destination takes its messages one at a "
                                    "time, earliest deadline first, so a long draw holds back the messages "
                                    "queued behind it (default constant)"}),
    Flag("--log-net-send", {"action": "store_true",
                            "help": "log every message as it is sent, a :send line each, in jepsen.log"}),
    Flag("--log-net-recv", {"action": "store_true",
                            "help": "log every message as it is delivered, a :recv line each, in jepsen.log"}),
    Flag("--log-stderr", {"action": "store_true",
                          "help": "also log each line the nodes write to stderr in jepsen.log as it comes (it "
                                  "always goes to node-logs/<node id>.log)"}),
    Flag("--max-writes-per-key", {"type": argtypes.positive_int, "default": 16, "metavar": "N",
                                  "help": "most sends any one key receives (default 16)"}),
    Flag("--recovery-time", {"type": argtypes.non_negative_float, "default": 10.0, "metavar": "SECONDS",
                             "help": "pause between the main phase and the final polls (default 10)"}),
    Flag("--restart-every", {"type": argtypes.positive_float, "default": None, "metavar": "SECONDS",
                             "help": "SIGKILL and restart the node (same arguments and directory) at random moments "
                                     "about this far apart during the main phase (a node keeping its log in a file "
                                     "must be given the same file each time, e.g. -- --db PATH). Also checks that a "
                                     "committed offset listed by the node is never below a commit acknowledged "
                                     "earlier: a rule stricter than Maelstrom's, which accepts last-write-wins "
                                     "commits (see --no-commit-check)"}),
    Flag("--no-commit-check", {"action": "store_true",
                               "help": "with --restart-every, skip the committed-offset check: for nodes whose "
                                       "commits are last-write-wins, as Maelstrom allows"}),
    Flag("--nemesis", {"type": faults_of, "default": frozenset(), "metavar": "FAULTS",
                       "help": "faults to inject, comma-separated, combined as Jepsen's nemesis package combines them "
                               "(e.g. kill,partition). partition, as Maelstrom's: cuts the network between nodes "
                               "(clients and services stay reachable) with Jepsen's partition specs (one node "
                               "isolated, a third, a majority, a ring of majorities), then heals it, in turn. kill "
                               "and pause go beyond Maelstrom, whose --nemesis accepts only partition; they follow "
                               "Jepsen's db package: kill SIGKILLs nodes (one, a minority, a third, a majority, all, "
                               "or a random set), which stay down, dropping what is sent to them, until the next "
                               "start restarts them (same command, same directory, init again); pause SIGSTOPs "
                               "nodes until the next resume (SIGCONT). Before the recovery pause, the network is "
                               "healed, then every node resumed, then every node started"}),
    Flag("--nemesis-interval", {"type": argtypes.positive_float, "default": NEMESIS_INTERVAL, "metavar": "SECONDS",
                                "help": f"mean seconds between two operations of one kind of fault (partitions; "
                                        f"kills and pauses) (default {NEMESIS_INTERVAL:g})"}),
    Flag("--availability", {"type": argtypes.availability, "default": None, "metavar": "total|FRACTION",
                            "help": "also check, as Maelstrom's availability checker, that this fraction of "
                                    "operations (0 to 1) completed ok, or all of them with total (default: no such "
                                    "check)"}),
    Flag("--seed", {"type": int, "default": None,
                    "help": "seed of the workload's random choices and of the latencies drawn"}),
    Flag("--store", {"default": "store", "metavar": "DIR", "help": "where run directories go (default store/)"}),
)

OUR_FLAGS = (
    Flag("--rpc-timeout", {"type": argtypes.positive_float, "default": RPC_TIMEOUT, "metavar": "SECONDS",
                           "help": f"seconds a client waits for a reply before its operation is indeterminate and "
                                   f"the client is replaced (default {RPC_TIMEOUT:g}, as Maelstrom)"}),
    Flag("--hostile-every", {"type": argtypes.positive_float, "default": None, "metavar": "SECONDS",
                             "help": f"write one hostile line to the node's stdin at random moments about this far "
                                     f"apart, from the main phase to the end: bytes that are not JSON, invalid "
                                     f"UTF-8, truncated or deeply nested JSON, and invalid requests from client "
                                     f"{HOSTILE_CLIENT} (unknown types, missing or mistyped fields, bad offsets and "
                                     f"msg_ids). Replies to {HOSTILE_CLIENT} are counted by error code; one that is "
                                     f"not an error accepted an invalid request and is flagged {HOSTILE_ACCEPTED}"}),
    Flag("--lose-disk", {"action": "store_true",
                         "help": "with --nemesis kill or --restart-every: each time a node is killed, delete its "
                                 "files (everything in its directory, nodes/<node id>/ in the run directory) before "
                                 "it starts again, as if its disk had been lost. Goes beyond both Maelstrom and "
                                 "Jepsen's combined nemesis package. Give the node relative paths (e.g. -- --db "
                                 "{node_id}.db): a file at an absolute path is out of its reach"}),
    Flag("--nemesis-targets", {"type": targets_of, "default": NODE_SPECS, "metavar": "SPECS",
                               "help": "the node specs kills and pauses draw their targets from, comma-separated, as "
                                       "the :targets option of Jepsen's :kill and :pause (default: all of them: "
                                       "random, one, minority-third, minority, majority, all); e.g. one, to kill or "
                                       "pause a single node at a time"}),
    Flag("--final-polls-together", {"action": "store_true",
                                    "help": "every client's first final poll (of every key, from offset 0) at the "
                                            "same instant, where Jepsen's generator spaces them over 0-0.4 s: the "
                                            "heaviest moment a node can be asked to serve. Goes beyond Maelstrom"}),
)

DESCRIPTION = (
    "Run Jepsen Maelstrom's kafka workload against a node program and check the history, as `maelstrom "
    "test -w kafka` does: each node is a child process spoken to in JSON lines on its stdin/stdout, on a "
    "simulated network that also carries messages between nodes and to Maelstrom's services (lin-kv, seq-kv, "
    "lww-kv, lin-tso); each node runs in a directory of its own, nodes/<node id>/ in the run directory (a "
    "relative path it is given lands there), and its stderr goes to node-logs/<node id>.log."
)

EPILOG = (
    "Writes store/kafka/<time>/ (results.json and results.edn, history.jsonl, history.edn and history.txt, "
    "timeline.html, messages.svg, latency-raw.png, latency-quantiles.png, rate.png, jepsen.log, node-logs/, "
    "memory.csv, and hostile.jsonl with --hostile-every) and points store/latest at it; `maelstrom-kafka-test "
    "serve` shows the store in a browser. Two verdicts: Maelstrom's (the anomalies Maelstrom's kafka checker "
    f"reports: {', '.join(MAELSTROM_TYPES)}; or 'unknown' where its analysis would stop with an error) and our "
    f"stricter checks ({', '.join(STRICTER_TYPES)}; committed-offset-regression only with --restart-every, "
    f"{HOSTILE_ACCEPTED} only with --hostile-every, see there). A node that prints anything but a message on "
    f"stdout, or exits without being killed, aborts the test. {exit_status.DESCRIBED} The history recorded until "
    "an interruption is still written. `maelstrom-kafka-test check --help` judges a stored history without "
    "running anything; `maelstrom-kafka-test serve --help` shows the store on a web page; `maelstrom-kafka-test "
    "matrix --help` runs many tests, node counts by faults by latencies by seeds, into one table."
)


def split_node_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """The command's own arguments, and the node's (everything after the first `--`)."""
    if "--" not in argv:
        return argv, []
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1:]


def add_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, flags: tuple[Flag, ...]) -> None:
    for flag in flags:
        options = dict(flag.options)
        parser.add_argument(*options.pop("aliases", ()), flag.name, **options)


def parser() -> exit_status.Parser:
    built = exit_status.Parser(prog="maelstrom-kafka-test", usage="%(prog)s --bin PATH [options] [-- node args...]",
                               description=DESCRIPTION, epilog=EPILOG)
    add_flags(built, MAELSTROM_FLAGS)
    add_flags(built.add_argument_group("advanced (not Maelstrom flags)"), OUR_FLAGS)
    return built


def checked(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """The combinations a flag alone cannot refuse, refused with a usage error."""
    if args.lose_disk and "kill" not in args.nemesis and not args.restart_every:
        parser.error("--lose-disk needs --nemesis kill or --restart-every: it acts when a node is killed")
    if reason := refusal(args.latency_dist, args.latency):
        parser.error(reason)
    return args


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
