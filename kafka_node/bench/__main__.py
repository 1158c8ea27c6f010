"""`python -m kafka_node.bench` runs the benchmark, as the `maelstrom-kafka-bench` command does."""

import sys

from kafka_node.bench.cli import main

sys.exit(main())
