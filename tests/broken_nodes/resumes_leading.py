"""Our node with one rule of replication broken: a node that restarts trusts lin-kv's word from
before, so one still named leader leads again at once, even from the empty file of a lost disk
(what Kafka's broker epochs forbid), and its followers truncate to match it. Correct on a calm
network, where nothing restarts; it loses acknowledged messages when a leader's disk is lost."""

import sys

# The runner starts the interpreter --bin resolves to, outside any virtual environment: the
# first argument names where our package is installed.
sys.path.insert(0, sys.argv.pop(1))

from kafka_node import cli
from kafka_node.replication import roles


def resume_where_lin_kv_says(replicator, part, state, now):
    if state.leader == replicator.node_id:
        return replicator.lead(part, state, now)
    replicator.follow(part, state, now)
    return []


roles._start = resume_where_lin_kv_says

if __name__ == "__main__":
    sys.exit(cli.main())
