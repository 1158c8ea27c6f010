"""The rules replication must hold (S1-S7 of the replication design's section 0), each driven on three
of our cores through the exact interleaving that breaks it, and judged by what clients, lin-kv, the
files and the messages in flight show: never by the replicator's insides, which may be rebuilt."""

from __future__ import annotations

from typing import Any

from kafka_node.replication.timing import Timing

from support.replicas import Replicas

# The timeouts (seconds): the one place this module learns them.
TIMING = Timing()
LAG = TIMING.lag  # a follower behind this long leaves the in-sync set
ELECTION = TIMING.election  # an in-sync follower this long without word from its leader tries to lead
REPLICATION = TIMING.replication  # a write not held by the in-sync set by then is answered 13
LEADER_WAIT = TIMING.leader_wait  # a request waits this long for its partition to have a leader able to take it
KV_TIMEOUT = TIMING.kv_timeout  # a lin-kv call unanswered this long is given up on
HEARTBEAT = TIMING.heartbeat  # a leader with nothing to send a follower this long sends an empty batch
TICK = TIMING.tick  # how often a node's timers run

KV_KEY = "kafka-node/partition/{}"


class Sends:
    """The sends a test's clients make, so that the offsets they were given and the messages
    polls returned can be laid side by side per key."""

    def __init__(self, replicas: Replicas) -> None:
        self.replicas = replicas
        self.made: dict[int, tuple[str, Any]] = {}  # msg_id -> (key, msg)

    def request(self, node: str, key: str, msg: Any) -> int:
        msg_id = self.replicas.request(node, {"type": "send", "key": key, "msg": msg})
        self.made[msg_id] = (key, msg)
        return msg_id

    def send(self, node: str, key: str, msg: Any, seconds: float = 0.0) -> dict[str, Any] | None:
        msg_id = self.request(node, key, msg)
        self.replicas.settle(seconds)
        return self.replicas.replies.get(msg_id)

    def acknowledged(self, key: str) -> dict[int, Any]:
        """Offset -> message, for every send to `key` answered send_ok."""
        replies = self.replicas.replies
        return {replies[msg_id]["offset"]: msg for msg_id, (k, msg) in self.made.items()
                if k == key and replies.get(msg_id, {}).get("type") == "send_ok"}

    def failed_indefinitely(self) -> set[Any]:
        """The messages whose send was answered 13 (outcome unknown)."""
        replies = self.replicas.replies
        return {msg for msg_id, (_, msg) in self.made.items() if replies.get(msg_id, {}).get("code") == 13}

    def seen(self, key: str) -> dict[int, set[Any]]:
        """Offset -> every message a client saw there: given by a send_ok, or read by a poll."""
        seen: dict[int, set[Any]] = {}
        for offset, msg in self.acknowledged(key).items():
            seen.setdefault(offset, set()).add(msg)
        for reply in self.replicas.replies.values():
            if reply.get("type") == "poll_ok":
                for offset, msg in reply["msgs"].get(key, []):
                    seen.setdefault(offset, set()).add(msg)
        return seen


def leadership_of(replicas: Replicas, part: int) -> tuple[str | None, int, list[str]]:
    """(leader, epoch, in-sync set) as lin-kv holds them (other fields it may gain are left out)."""
    state = replicas.leadership(part)
    return state["leader"], state["epoch"], state["isr"]


def leader_and_isr(replicas: Replicas, part: int) -> tuple[str | None, list[str]]:
    leader, _, isr = leadership_of(replicas, part)
    return leader, isr


def polled(replicas: Replicas, node: str, key: str, seconds: float = 0.0) -> list[Any] | None:
    """The messages of `key` a poll from offset 0 through `node` returns (None: no poll_ok)."""
    reply = replicas.ask(node, {"type": "poll", "offsets": {key: 0}}, seconds)
    if reply is None or reply["type"] != "poll_ok":
        return None
    return [msg for _, msg in reply["msgs"].get(key, [])]


def test_s1_a_write_answered_13_is_never_read_where_the_new_leader_gave_its_offset_to_another(replicas):
    """S1: giving up on a write's reply is not the same as it being safe to read. The leader writes
    W at offset 1, its batch never reaches the followers, and it is paused (and cut off from
    them) while they elect a new leader, which gives offset 1 to W2. Woken past W's deadline,
    the old leader answers W 13, and a poll reaching it before lin-kv's answer does must not
    show W at offset 1."""
    key = replicas.key_in(0)
    sends = Sends(replicas)
    assert sends.send("n0", key, "W0")["offset"] == 0
    sends.request("n0", key, "W")
    assert replicas.drop(lambda src, dest, body: src == "n0" and body["type"] == "replicate")
    replicas.pause("n0")
    replicas.isolate("n0")
    replicas.settle(ELECTION + 0.5)
    new_leader = leadership_of(replicas, 0)[0]
    assert new_leader in ("n1", "n2"), leadership_of(replicas, 0)
    assert sends.send(new_leader, key, "W2")["offset"] == 1
    replicas.delay(lambda src, dest, body: src == "n0" and dest == "lin-kv")  # its lin-kv round trips are slow
    replicas.settle(REPLICATION)  # W's deadline passes while n0 sleeps
    replicas.resume("n0")
    replicas.settle(0.05)  # its first tick (today: W is answered 13 there, and n0 still believes it leads)
    polled(replicas, "n0", key)  # what it shows joins `seen`
    seen = sends.seen(key)
    assert all(len(msgs) == 1 for msgs in seen.values()), (
        f"two messages at one offset of key {key}: { {offset: sorted(msgs, key=str) for offset, msgs in seen.items()} }")
    _, _, isr = leadership_of(replicas, 0)
    unheld = [msg for msgs in seen.values() for msg in msgs if msg in sends.failed_indefinitely()
              and not any(msg in [m for _, m in replicas.stored(node, key)] for node in isr)]
    assert unheld == [], f"read though answered 13 and held by no in-sync replica ({isr}): {unheld}"


def test_s2_a_replica_that_lost_its_file_as_the_only_in_sync_one_never_empties_the_others_however_often_it_restarts(
        replicas):
    """S2: "this replica lost its data" outlives every restart. n0, the only in-sync replica of
    partition 0, loses its file and restarts (it refuses to lead), then restarts again, finding
    the file its first restart made: empty, yet not new. It must not lead from it, and the
    followers must keep every acknowledged message."""
    key = replicas.key_in(0)
    for value in range(3):
        assert replicas.ask("n0", {"type": "send", "key": key, "msg": value})["offset"] == value
    replicas.cut.update({"n1", "n2"})
    replicas.settle(LAG + 0.5)
    assert leader_and_isr(replicas, 0) == ("n0", ["n0"])
    replicas.kill("n0", lose_file=True)
    replicas.heal()
    replicas.restart("n0")  # today: it finds no file, and refuses to lead
    replicas.settle(ELECTION * 3)
    replicas.kill("n0")
    replicas.restart("n0")  # today: it finds the empty file, leads a new epoch alone, and followers truncate to it
    replicas.settle(ELECTION * 3)
    acknowledged = [(0, 0), (1, 1), (2, 2)]
    for follower in ("n1", "n2"):
        assert replicas.stored(follower, key) == acknowledged, (
            f"{follower} lost acknowledged messages; lin-kv: {leadership_of(replicas, 0)}")


def test_s3_an_in_sync_set_expansion_whose_reply_was_lost_still_guards_what_is_acknowledged(replicas):
    """S3: a lin-kv call whose answer never came has an unknown outcome. n2 falls behind and leaves
    the in-sync set; once caught up, n0 adds it back: lin-kv applies that, and its reply is lost.
    While n0's read of the outcome is slow, it acknowledges W with n1 alone, though lin-kv lists
    n2 in sync. n0 and n1 crash; n1 comes back, and lin-kv lets n2, which never got W, lead.
    Every acknowledged message must survive that."""
    key = replicas.key_in(0)
    sends = Sends(replicas)
    assert sends.send("n0", key, "W0")["offset"] == 0
    replicas.pause("n2")
    replicas.settle(LAG + 0.5)
    assert leader_and_isr(replicas, 0) == ("n0", ["n0", "n1"])
    replicas.lose_kv_reply(lambda src, body: src == "n0" and body["type"] == "cas" and body["key"] == KV_KEY.format(0))
    replicas.delay(lambda src, dest, body: src == "n0" and dest == "lin-kv" and body["type"] == "read"
                   and body["key"] == KV_KEY.format(0))
    replicas.resume("n2")
    replicas.settle(LAG)
    assert leader_and_isr(replicas, 0) == ("n0", ["n0", "n1", "n2"]), "the expansion was applied"
    replicas.settle(KV_TIMEOUT)  # n0 gives up on its answer and asks lin-kv again, slowly
    replicas.cut_link("n0", "n2")
    sends.send("n0", key, "W")  # today: acknowledged by n0 and n1
    replicas.kill("n0")
    replicas.kill("n1")
    replicas.restart("n1")  # today: takes itself out of the in-sync set, and n2 elects itself
    replicas.settle(ELECTION * 3)
    replicas.heal()
    replicas.deliver_delayed()  # lin-kv answers n0 again
    replicas.restart("n0")
    replicas.settle(1.0)
    acknowledged = sends.acknowledged(key)
    for node in replicas.ids:
        seen = polled(replicas, node, key, LEADER_WAIT)
        missing = [msg for msg in acknowledged.values() if seen is None or msg not in seen]
        assert missing == [], (f"acknowledged {acknowledged}, polled through {node}: {seen}; "
                               f"lin-kv: {leadership_of(replicas, 0)}")


def test_s4_a_deposed_leader_waking_up_never_lists_a_committed_offset_older_than_one_acknowledged(replicas):
    """S4: no read from a deposed leader. n0 is paused (and cut off) while n1 and n2 elect a new
    leader, which acknowledges a commit of offset 1. A listing reaching n0 while it sleeps is
    read as it wakes, before any of its timers runs: it must not answer offset 0."""
    key = replicas.key_in(0)
    assert replicas.ask("n0", {"type": "send", "key": key, "msg": "W0"})["offset"] == 0
    assert replicas.ask("n0", {"type": "commit_offsets", "offsets": {key: 0}})["type"] == "commit_offsets_ok"
    replicas.pause("n0")
    replicas.isolate("n0")
    replicas.settle(ELECTION + 0.5)
    new_leader = leadership_of(replicas, 0)[0]
    assert new_leader in ("n1", "n2"), leadership_of(replicas, 0)
    assert replicas.ask(new_leader, {"type": "send", "key": key, "msg": "W1"})["offset"] == 1
    assert replicas.ask(new_leader, {"type": "commit_offsets", "offsets": {key: 1}})["type"] == "commit_offsets_ok"
    listing = replicas.request("n0", {"type": "list_committed_offsets", "keys": [key]})
    replicas.resume("n0")
    replicas.heal()
    replicas.settle(LEADER_WAIT + 0.1)
    reply = replicas.replies.get(listing)
    if reply is not None and reply["type"] == "list_committed_offsets_ok":
        assert reply["offsets"].get(key, -1) >= 1, f"offset 1 of {key} was committed and acknowledged; n0 listed {reply}"


def test_s5_a_partition_is_led_again_once_faults_stop_while_a_live_replica_holds_every_acknowledged_write(replicas):
    """S5: never strand a partition while some replica holds every acknowledged write. n1 dies;
    n0, leader of partition 0, restarts and hands the lead to n1. n0 is cut off from n2, which
    elects itself alone in sync (no write can be acknowledged since), then loses its disk. Once
    every fault stops, n0 and n1 hold every acknowledged message: a send must be taken again."""
    key = replicas.key_in(0)
    for value in range(3):
        assert replicas.ask("n0", {"type": "send", "key": key, "msg": value})["offset"] == value
    replicas.kill("n1")
    replicas.kill("n0")
    replicas.restart("n0")  # today: it hands the lead to n1, which is dead
    replicas.settle()
    replicas.isolate("n0")
    replicas.settle(ELECTION + 0.5)  # today: n2 elects itself, alone in sync
    assert leadership_of(replicas, 0)[0] == "n2"
    replicas.kill("n2", lose_file=True)
    replicas.restart("n2")
    replicas.settle(1.0)
    replicas.heal()
    replicas.restart("n1")
    replicas.settle(5 * ELECTION + KV_TIMEOUT + LEADER_WAIT)
    acknowledged = [(0, 0), (1, 1), (2, 2)]
    assert [node for node in ("n0", "n1") if replicas.stored(node, key) == acknowledged] == ["n0", "n1"], \
        "n0 and n1 hold every acknowledged message"
    reply = replicas.ask("n0", {"type": "send", "key": key, "msg": 3}, LEADER_WAIT + REPLICATION)
    assert reply is not None and reply["type"] == "send_ok", (
        f"partition 0 refuses sends with every fault over; lin-kv: {leadership_of(replicas, 0)}; reply: {reply}")


def test_s5_an_election_lin_kv_applies_after_its_sender_restarted_does_not_leave_the_partition_to_no_one(replicas):
    """S5, the lead named in lin-kv: n0, leader of partition 0, pauses; n1 and n2 ask to lead, and
    their compare-and-sets are slow on the way. Both restart and follow n0, awake again. Then
    lin-kv applies one of those calls: it names leader a former incarnation that no one is, and
    the replica answering in its place has forgotten the call. Once n0 asks lin-kv whether it
    still leads, every replica learns the new epoch and one of them leads the next."""
    key = replicas.key_in(0)
    assert replicas.ask("n1", {"type": "send", "key": key, "msg": 0})["offset"] == 0
    epoch = leadership_of(replicas, 0)[1]
    replicas.delay(lambda src, dest, body: dest == "lin-kv" and body["type"] == "cas"
                   and body["key"] == KV_KEY.format(0) and body["to"]["leader"] in ("n1", "n2"))
    replicas.pause("n0")
    replicas.settle(ELECTION + 0.5)  # n1 and n2 ask to lead; the calls wait on the way
    for node in ("n1", "n2"):
        replicas.kill(node)
        replicas.restart(node)
    replicas.resume("n0")
    replicas.settle(LAG)
    assert leadership_of(replicas, 0)[:2] == ("n0", epoch)
    replicas.deliver_delayed()  # lin-kv applies the first call, and answers an incarnation that is gone
    replicas.settle()
    named, named_epoch, _ = leadership_of(replicas, 0)
    assert named in ("n1", "n2") and named_epoch == epoch + 1
    replicas.settle(TIMING.reread + 2 * ELECTION + KV_TIMEOUT)
    leader, led_epoch, _ = leadership_of(replicas, 0)
    assert led_epoch > named_epoch, f"lin-kv still names the forgotten epoch {named_epoch}, led by {leader}"
    reply = replicas.ask("n2", {"type": "send", "key": key, "msg": 1}, LEADER_WAIT + REPLICATION)
    assert reply is not None and (reply["type"], reply.get("offset")) == ("send_ok", 1), reply


def test_s6_a_restarted_node_never_leads_an_epoch_older_than_the_lin_kv_state_it_was_told(replicas):
    """S6: every lin-kv state is ordered by version, whatever brings it. n0, leader of partition 0
    in epoch 1, restarts; lin-kv answers its start-up read at once, but the reply is slow. n1 and
    n2 elect a leader for epoch 2, which tells n0; n0 follows it. Then the old reply arrives: n0
    must not act as leader of epoch 1 (send its batches), which its former incarnation led and
    lin-kv has left."""
    key = replicas.key_in(0)
    assert replicas.ask("n0", {"type": "send", "key": key, "msg": "W0"})["offset"] == 0
    replicas.kill("n0")
    restarted = len(replicas.sent)
    replicas.restart("n0")
    start_up_reads = [body["msg_id"] for body in replicas.in_flight(
        lambda src, dest, body: src == "n0" and body["type"] == "read" and body["key"] == KV_KEY.format(0))]
    assert start_up_reads
    replicas.delay(lambda src, dest, body: src == "lin-kv" and body.get("in_reply_to") in start_up_reads)
    replicas.settle(ELECTION + 0.5)
    told = leadership_of(replicas, 0)
    new_leader, epoch, _ = told
    assert new_leader in ("n1", "n2") and epoch > 1, told
    assert replicas.sent_since(restarted, lambda src, dest, body: (src, dest) == (new_leader, "n0") and body.get("part") == 0
                               and epoch in (body.get("epoch"), body.get("state", {}).get("epoch"))), \
        f"n0 heard of epoch {epoch} from its leader"
    before = len(replicas.sent)
    replicas.deliver_delayed()
    replicas.settle(0.1)
    stale = replicas.sent_since(before, lambda src, dest, body: src == "n0" and body["type"] == "replicate"
                                and body["part"] == 0 and body["epoch"] < epoch)
    assert stale == [], f"n0 led epoch {stale[0]['epoch']} once told of epoch {epoch} (lin-kv: {told}): {stale}"


def test_s7_a_node_restarted_mid_run_answers_a_peers_replicate_before_init_with_nothing_lacking_in_reply_to(replicas):
    """S7's neighbour: a node restarted mid-run hears its leaders' batches before Maelstrom's init.
    Whatever it does with them, it sends nothing its peers cannot take for a reply: no message
    without in_reply_to (a replica's own messages, which carry none, wait for init)."""
    replicas.kill("n1")
    replicas.restart("n1", init=False)
    before = len(replicas.sent)
    replicas.settle(2 * HEARTBEAT)  # a heartbeat of each partition n1 follows
    heard = replicas.sent_since(before, lambda src, dest, body: dest == "n1" and body["type"] == "replicate")
    assert heard, "n1's leaders sent it batches before its init"
    unanswerable = replicas.sent_since(before, lambda src, dest, body: src == "n1" and body.get("in_reply_to") is None)
    assert unanswerable == [], f"before init, n1 sent its peers messages without in_reply_to: {unanswerable}"


def test_calm_a_follower_a_moment_behind_steady_writes_stays_in_the_in_sync_set(replicas):
    """The calm run's failure: under steady writes, a follower's acknowledgement always arrives
    after the leader wrote again, so it never holds the very latest write; it holds everything
    written up to a moment ago, and a calm network must never move it out of the in-sync set."""
    key = replicas.key_in(0)

    def late(src: str, dest: str, body: dict[str, Any]) -> bool:
        return (src, dest, body.get("type"), body.get("part")) == ("n1", "n0", "replicate_ok", 0)

    replicas.delay(late)
    acknowledged = []
    for value in range(int(4 * LAG / TICK)):  # writes for four lag timeouts, one every tick
        acknowledged.append(replicas.request("n0", {"type": "send", "key": key, "msg": value}))
        replicas.deliver_delayed()  # n1's answers to the write before come in after this one was sent
        replicas.delay(late)
        replicas.settle(TICK)
    state = replicas.leadership(0)
    assert state["isr"] == ["n0", "n1", "n2"], f"a follower a tick behind left the in-sync set: {state}"
    assert all(replicas.replies[msg_id]["type"] == "send_ok" for msg_id in acknowledged[:-1])
