"""The performance goals each row of the table is held to: ratios to a baseline measured in the
same run wherever one exists, since this machine's disk and CPU speeds drift by the minute."""

from __future__ import annotations

#: The RPCs that change the log, and those that only read it.
WRITES = ("send", "commit_offsets")
READS = ("poll", "list_committed_offsets")

#: One request in flight: a write at most this many times the trivial node's round trip with
#: --durability off; a read at most this many times it, whatever the durability; and every
#: RPC, durable, no slower than the naive node's.
WRITE_OVER_TRIVIAL = 2.0
READ_OVER_TRIVIAL = 1.3
OVER_NAIVE = 1.0

#: A lone durable send: at most the trivial node's round trip, one fsync (row j) and this (ms).
LONE_SEND_SLACK_MS = 0.05
#: A durable write of the seed's workload: at most the runner's floor, one fsync and this (ms).
SEED_WRITE_SLACK_MS = 0.1

#: Durable sends with 64 in flight: at least this share of the same load without fsync...
DURABLE_OVER_OFF = 0.8
#: ... at least this many per second...
SATURATION_PER_S = 50_000
#: ... and "far faster" than the naive node under the same load: at least this many times.
OVER_NAIVE_UNDER_LOAD = 5.0

#: A log of 10 million messages costs at most this share of the throughput of a small one.
BIG_LOG_OVER_SMALL = 0.8
#: Start-up to init_ok, and resident memory, whatever the log's size.
STARTUP_MS = 200
MEMORY_MIB = 64
#: Memory is "not growing with the log" when the big log's figure is within this factor of the small's.
MEMORY_GROWTH_ALLOWED = 1.25
#: One poll naming 2,000 keys of 16 messages.
WIDE_POLL_MS = 20

#: The generator is "not the bottleneck" when its ceiling is at least this many times row b.
GENERATOR_HEADROOM = 2.0
#: The Maelstrom runner is not the bottleneck when it drives this many times the seed's rate.
RUNNER_HEADROOM = 2.0

#: 5b's latency goal: a send on two nodes at most one forwarding round trip (ms) slower than on one.
FORWARD_ROUND_TRIP_MS = 0.3
#: 5c's goal: messages between servers per operation, on two nodes.
SERVER_MSGS_PER_OP = 1.5

#: Replication (three nodes, three replicas), the seed's workload: messages between servers per
#: operation at most this (one message per other node per write carries every partition's batches,
#: acknowledgements, requests sent on and their answers),
REPLICATED_SERVER_MSGS_PER_OP = 2.0
#: a send's p50 at 1,000 op/s at most this many times the same run with one copy per key,
REPLICATED_SEND_OVER_ONE_COPY = 1.5
#: ... and at 200 op/s (nothing queues) at most this many ms above it.
REPLICATION_SEND_MS = 0.3
#: Under partitions, at least this share of operations completes ok;
PARTITION_OK_FRACTION = 0.99
#: with a node killed about every 4 s and kept down 4 s, throughput at least this share of the calm run's.
KILL_THROUGHPUT_OVER_CALM = 0.7
#: A follower that lost its disk is refilled by its leader at least this many messages a second,
CATCH_UP_PER_S = 100_000
#: while the workload's send p99 stays within this factor of the calm run's.
CATCH_UP_SEND_P99_OVER_CALM = 2.0
#: A follower restarted behind by the same messages is back in sync, and sent, within this factor
#: of the time and bytes it takes in a partition of a hundredth of the keys: what it costs grows
#: with the keys that changed, not with all keys.
SCALE_OVER_FEW_KEYS = 1.5
#: After a failover, a restarted node leads its own partition again within this many seconds.
REBALANCE_BACK_S = 5.0
