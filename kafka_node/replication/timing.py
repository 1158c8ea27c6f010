"""Every timeout replication uses, in one value, and the relations between them that keep a client
hearing the right error in time and a calm network from ever changing a leader or an in-sync set."""

from __future__ import annotations

from dataclasses import dataclass, field

from kafka_node.storage.opening import BUSY_TIMEOUT_MS

#: Maelstrom's client gives up on a request after this many seconds (its RPC timeout).
MAELSTROM_CLIENT_TIMEOUT = 5.0


@dataclass(frozen=True)
class Timing:
    """Seconds. No timeout carries safety (a write is acknowledged only once every in-sync
    replica holds it, leadership moves only by compare-and-set, and a leader reads only under
    a lease its followers cannot outlive); they decide liveness, and which error a client hears."""

    #: How often the partitions' timers are looked at.
    tick: float = 0.05
    #: Longest a leader leaves a follower without a message (an empty batch if nothing else).
    heartbeat: float = 0.1
    #: A follower that has not held everything written up to this long ago leaves the in-sync set.
    lag: float = 0.5
    #: An eligible follower that has heard nothing from its leader for this long may take the lead.
    election: float = 0.6
    #: A leader reads (polls, listings) only while every replica able to take its lead heard it
    #: less than this long ago: shorter than `election`, so no follower can be elected meanwhile.
    lease: float = 0.5
    #: The partition's preferred replica (its first), once lin-kv has listed it in the in-sync
    #: set for this long while another leads, takes the lead back (Kafka's preferred-leader election).
    rebalance: float = 1.5
    #: A probe or catch-up left unanswered is sent again after this long.
    resend: float = 0.5
    #: A partition's state is read again this long after lin-kv could not say it.
    kv_retry: float = 0.25
    #: A partition's state is read again this often by its leader, by its preferred replica out of
    #: the in-sync set, and by a node holding no replica of it: news of a change may be lost on the
    #: way, and a compare-and-set may be applied after the replica that sent it restarted.
    reread: float = 2.0
    #: A call to lin-kv unanswered for this long has an unknown outcome (it is read again).
    kv_timeout: float = 1.0
    #: A client's request waits at most this long for its keys' partition to have a leader able
    #: to take it, before a definite error.
    leader_wait: float = 1.0
    #: A commit the in-sync set has not come to hold after this long is answered as unknown (13).
    replication: float = 2.5
    #: A request forwarded to another node counts as unanswered after this long (--forward-timeout).
    forward: float = 3.0
    #: SQLite waits this long for a write lock held elsewhere before a definite error.
    busy: float = BUSY_TIMEOUT_MS / 1000
    #: Maelstrom's client gives up after this long.
    client: float = MAELSTROM_CLIENT_TIMEOUT
    #: How long a leader keeps the memory of a commit given up on (a part still answered late
    #: must not be acknowledged): past every forwarded request's deadline.
    failed_memory: float = field(init=False)
    #: How long a request forwarded by another node waits here for a leader: its answer then
    #: reaches the forwarder before the forward timeout, even after a full replication wait.
    peer_wait: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "failed_memory", self.forward + 1.0)
        object.__setattr__(self, "peer_wait", max(0.0, self.forward - self.replication - self.tick))

    def violations(self) -> list[str]:
        """Each relation between the timeouts that does not hold, by name, with its reason."""
        rules = [
            ("R1", 2 * self.tick <= self.heartbeat, "2·tick <= heartbeat: a heartbeat is at most half a period late"),
            ("R2", 3 * self.heartbeat <= self.lag, "3·heartbeat <= lag: a live follower is heard twice before it may "
                                                   "leave the in-sync set"),
            ("R3", 3 * self.heartbeat <= self.lease, "3·heartbeat <= lease: a leader renews its lease twice before "
                                                     "it lapses"),
            ("R4", self.lease < self.election, "lease < election: no follower may take the lead while the leader "
                                               "still reads under its lease"),
            ("R5", self.election + self.kv_retry <= self.leader_wait, "election + kv_retry <= leader_wait: a request "
                                                                      "waiting for a leader outlives one election"),
            ("R6", self.lag + 2 * self.kv_timeout <= self.replication, "lag + 2·kv_timeout <= replication: a write "
                                                                       "waiting on a dead follower is freed by its "
                                                                       "leaving the set, then being given up, first"),
            ("R7", self.replication < self.forward, "replication < forward: the leader's 13 reaches the forwarder "
                                                    "before it gives up"),
            ("R8", self.busy < self.forward < self.client, "busy < forward < client: the owner's definite error reaches "
                                                           "the forwarder, and the forwarder's reaches the client"),
            ("R9", self.leader_wait + self.forward < self.client, "leader_wait + forward < client: a request that "
                                                                  "waited for a leader, then was forwarded, is answered "
                                                                  "in time"),
            ("R10", self.peer_wait + self.replication <= self.forward, "peer_wait + replication <= forward: a forwarded "
                                                                       "request that waited here for a leader is "
                                                                       "answered before the forwarder gives up"),
            ("R11", self.lag < self.rebalance, "lag < rebalance: the preferred replica takes the lead back only after "
                                               "staying in the in-sync set longer than a lagging one takes to leave it"),
        ]
        return [f"{name}: {reason}" for name, holds, reason in rules if not holds]
