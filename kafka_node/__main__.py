"""`python -m kafka_node` runs the node, as the `maelstrom-kafka` command does."""

import sys

from kafka_node.cli import main

sys.exit(main())
