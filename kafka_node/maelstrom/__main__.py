"""`python -m kafka_node.maelstrom`: the same as the `maelstrom-kafka-test` command."""

import sys

from kafka_node.maelstrom.cli import main

sys.exit(main())
