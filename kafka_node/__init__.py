"""kafka-node: a durable single-node Kafka-style log for Maelstrom's kafka workload, in SQLite."""

from importlib import metadata

try:
    __version__ = metadata.version("kafka-node")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
