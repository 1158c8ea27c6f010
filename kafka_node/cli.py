"""The `maelstrom-kafka` command: flags and environment, logging on stderr, exit statuses.
It owns the log file for the node's lifetime; the work is done by `node` and `serve`."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from kafka_node import __version__, argtypes, cluster, framing, serve
from kafka_node.node import Node, ReplicationSettings
from kafka_node.rpcs import PollLimits
from kafka_node.storage import (
    NODE_ID_PLACEHOLDER,
    Durability,
    LogFile,
    StorageError,
    UnusableDatabase,
    describe,
    fresh_database_path,
)

logger = logging.getLogger("kafka_node")

EXIT_OK = serve.EXIT_OK
EXIT_FAILED = serve.EXIT_FAILED  # a failed COMMIT or sync, or stdout closed
EXIT_REFUSED = serve.EXIT_REFUSED  # bad flags, or a database file this node will not open


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="maelstrom-kafka",
        description=(
            "A durable Kafka-style log speaking Maelstrom's JSON-lines protocol on "
            "stdin/stdout (the kafka workload: send, poll, commit_offsets, "
            "list_committed_offsets), stored in SQLite. When init names several nodes, each key "
            "has one owner, and the other nodes forward its requests to it. Logs go to stderr."
        ),
        epilog=(
            "Exit status: 0 after end of input or SIGTERM/SIGINT (the batch in hand is finished "
            "first); 1 after an I/O error at COMMIT or a failed sync of the WAL (restart to recover "
            "from the disk), when stdout is closed, or when the log cannot be opened for a storage "
            "error; 2 for bad flags "
            "or a database file that is not a kafka-node log, is damaged, or has a newer schema "
            "(the file is left untouched), at start-up or, for a path holding {node_id}, after "
            "answering init with error 13."
        ),
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        default=os.environ.get("KAFKA_NODE_DB") or None,
        help=(
            "SQLite file holding the log (default: $KAFKA_NODE_DB). A restart with the same path "
            "continues the same log. {node_id} in it is replaced by the node's id at init (the "
            "file is opened then), so that several nodes can share one command line. With "
            "neither, each start uses a fresh file in a new temporary directory and logs its "
            "path, so every Maelstrom test starts empty."
        ),
    )
    parser.add_argument(
        "--durability",
        choices=[d.value for d in Durability],
        default=os.environ.get("KAFKA_NODE_DURABILITY", Durability.FULL.value),
        help=(
            "full (default, $KAFKA_NODE_DURABILITY): fsync before every acknowledgement, so an "
            "acknowledged send or commit survives a process kill, an OS crash and a power cut. "
            "normal: fsync only at checkpoints; an acknowledgement survives a process kill but "
            "the last acknowledged batches may be lost in an OS crash or power cut. "
            "off: never fsync, for measuring what durability costs; survives a process kill "
            "only, and a power cut may corrupt the file."
        ),
    )
    parser.add_argument(
        "--poll-max-per-key",
        type=argtypes.positive_int,
        default=100,
        metavar="N",
        help="most messages returned per key in one poll reply (default: 100)",
    )
    parser.add_argument(
        "--poll-max-messages",
        type=argtypes.positive_int,
        default=100_000,
        metavar="N",
        help=(
            "most messages in one poll reply (default: 100000); a poll naming more keys than "
            "this allows gets fewer messages per key, and past N keys some keys get none"
        ),
    )
    parser.add_argument(
        "--poll-max-bytes",
        type=argtypes.positive_int,
        default=4 << 20,
        metavar="N",
        help=(
            "most bytes of messages in one poll reply (default: 4 MiB): each key gets the "
            "messages that fit, in the order the poll names the keys; a poll with anything to "
            "return gets at least one message, however big"
        ),
    )
    parser.add_argument(
        "--max-batch",
        type=argtypes.positive_int,
        default=None,
        metavar="N",
        help=(
            "most requests applied in one transaction (default: no limit, every request read "
            "at once shares one COMMIT); 1 turns group commit off"
        ),
    )
    parser.add_argument(
        "--max-line-bytes",
        type=argtypes.positive_int,
        default=framing.DEFAULT_MAX_LINE_BYTES,
        metavar="N",
        help=(
            "input lines longer than this are skipped with a log line, and answered with error 12 "
            "when they name their asker (default: 64 MiB)"
        ),
    )
    parser.add_argument(
        "--forward-timeout",
        type=argtypes.positive_float,
        default=cluster.FORWARD_TIMEOUT,
        metavar="SECONDS",
        help=(
            f"in a cluster, how long a request forwarded to the owner of its keys may go "
            f"unanswered (default: {cluster.FORWARD_TIMEOUT:g}); then the client gets error 13 for "
            "a send or commit_offsets (it may have been applied) and 11 for a poll or "
            "list_committed_offsets"
        ),
    )
    parser.add_argument(
        "--replication-factor",
        type=argtypes.positive_int,
        default=3,
        metavar="N",
        help=(
            "on several nodes, how many nodes hold each key (default: 3, at most the number of "
            "nodes): a leader and followers, with the leadership kept in Maelstrom's lin-kv "
            "service; 1 keeps one copy per key on the node that owns it, with no lin-kv"
        ),
    )
    parser.add_argument(
        "--min-insync",
        type=argtypes.positive_int,
        default=2,
        metavar="N",
        help=(
            "how many replicas (the leader included) must be in sync for a write to be applied "
            "(default: 2, at most the replication factor): an acknowledged send or commit then "
            "survives the loss of any one node and its disk; fewer in sync, writes get error 11"
        ),
    )
    parser.add_argument(
        "--leader-rebalance",
        type=argtypes.non_negative_float,
        default=ReplicationSettings().rebalance,
        metavar="SECONDS",
        help=(
            "with replicas, after a failover a partition's preferred replica (the node that led it "
            "first) takes its lead back once it has been in sync this long, so that every node leads "
            f"its own partition again, as Kafka's auto.leader.rebalance.enable (default: {ReplicationSettings().rebalance:g}); "
            "0: never"
        ),
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="stderr log detail (default: info; valid requests are never logged one by one)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    args = parser.parse_args(argv)
    if args.durability not in [d.value for d in Durability]:  # argparse does not check a default
        parser.error(f"KAFKA_NODE_DURABILITY must be one of full, normal, off; got {args.durability!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.db:
        path = fresh_database_path()
    elif NODE_ID_PLACEHOLDER in args.db:  # made absolute, but not normalised: `..` must not swallow the id
        path = os.path.join(os.getcwd(), args.db)
    else:
        path = os.path.abspath(args.db)
    limits = PollLimits(per_key=args.poll_max_per_key, messages=args.poll_max_messages, bytes=args.poll_max_bytes)
    with LogFile(path, Durability(args.durability), fresh=not args.db) as log_file:
        if not log_file.named_at_init:  # else the node learns the file's name at init
            try:
                log_file.open()
            except UnusableDatabase as refusal:
                logger.error("refusing to start: %s", refusal)
                return EXIT_REFUSED
            except StorageError as error:
                logger.error("cannot open the log: %s", describe(error))
                return EXIT_FAILED
        node = Node(log_file.open, limits, args.max_batch, args.max_line_bytes, args.forward_timeout,
                    ReplicationSettings(args.replication_factor, args.min_insync, args.leader_rebalance))
        try:
            return serve.serve(node)
        except BrokenPipeError:
            logger.error("stdout closed: the reader went away; exiting")
            return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
