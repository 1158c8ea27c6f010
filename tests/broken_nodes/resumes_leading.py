"""Our node with one rule of replication broken: a node that restarts trusts lin-kv's word from
before, so one still named leader leads that same epoch again at once, even from the empty file of
a lost disk (what Kafka's broker epochs and our file ids forbid), and its followers truncate to
match it. Correct on a calm network, where nothing restarts; it loses acknowledged messages when a
leader's disk is lost."""

import sys

# The runner starts the interpreter --bin resolves to, outside any virtual environment: the
# first argument names where our package is installed.
sys.path.insert(0, sys.argv.pop(1))

from kafka_node import cli
from kafka_node.replication.partition import PartitionMachine

_act = PartitionMachine._act


def trust_lin_kv(machine, now):
    state = machine.known
    if state is not None and state.leader == machine.me and machine.lead is None:
        machine.file = state.files.get(machine.me, machine.file)  # "my file is the one lin-kv names"
        machine.proposed_epochs.add(state.epoch)  # "the epoch lin-kv names is mine to lead"
    _act(machine, now)


PartitionMachine._act = trust_lin_kv

if __name__ == "__main__":
    sys.exit(cli.main())
