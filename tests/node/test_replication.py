"""Replication, one message at a time: three of our cores on real files with lin-kv between them,
the test carrying every message on a clock it moves (tests/support/replicas.py)."""

from __future__ import annotations

import pytest

from kafka_node.node import ReplicationSettings
from kafka_node.replication.timing import Timing

from support.replicas import Replicas, message_line

TIMING = Timing()
LEADER_WAIT, LAG_TIMEOUT, REPLICATION_TIMEOUT, ELECTION_TIMEOUT = (TIMING.leader_wait, TIMING.lag, TIMING.replication,
                                                                   TIMING.election)


def leader_of(replicas: Replicas, part: int) -> str:
    return replicas.leadership(part)["leader"]


def test_each_partition_starts_led_by_its_first_replica_with_every_replica_in_sync(replicas):
    for part in range(3):
        state = replicas.leadership(part)
        assert state["leader"] == f"n{part}"
        assert state["isr"] == ["n0", "n1", "n2"], state


def test_a_send_is_acknowledged_only_once_every_in_sync_replica_holds_it(replicas):
    key = replicas.key_in(0)
    msg_id = replicas.request("n1", {"type": "send", "key": key, "msg": 5})
    while msg_id not in replicas.replies:  # one message at a time, until the client hears
        replicas.deliver_one()
    assert [node for node in replicas.ids if replicas.stored(node, key)] == ["n0", "n1", "n2"]
    assert replicas.replies[msg_id] == {"type": "send_ok", "offset": 0, "in_reply_to": msg_id}


def test_a_poll_never_returns_what_the_in_sync_set_does_not_hold(replicas):
    key = replicas.key_in(0)
    assert replicas.ask("n0", {"type": "send", "key": key, "msg": 1})["type"] == "send_ok"
    replicas.cut.add("n2")  # a follower stops answering: the next send waits for it
    send = replicas.request("n0", {"type": "send", "key": key, "msg": 2})
    replicas.settle()
    assert send not in replicas.replies
    assert replicas.stored("n0", key) == [(0, 1), (1, 2)]  # on the leader's file already
    poll = replicas.ask("n0", {"type": "poll", "offsets": {key: 0}})
    assert poll["msgs"] == {key: [[0, 1]]}, "offset 1 is not held by every in-sync replica yet"


def test_a_follower_that_stops_answering_leaves_the_in_sync_set_and_writes_go_on(replicas):
    key = replicas.key_in(0)
    replicas.cut.add("n2")
    send = replicas.request("n0", {"type": "send", "key": key, "msg": 1})
    replicas.settle(LAG_TIMEOUT + 0.5)
    assert replicas.leadership(0)["isr"] == ["n0", "n1"]
    assert replicas.replies[send]["type"] == "send_ok", replicas.replies[send]
    replicas.cut.discard("n2")  # back: it catches up and rejoins
    replicas.settle(1.0)
    assert replicas.leadership(0)["isr"] == ["n0", "n1", "n2"]
    assert replicas.stored("n2", key) == [(0, 1)]


def test_with_fewer_in_sync_than_min_insync_a_write_is_refused_definitely_and_applied_nowhere(replicas):
    key = replicas.key_in(0)
    replicas.cut.update({"n1", "n2"})
    replicas.settle(LAG_TIMEOUT + 0.5)
    assert replicas.leadership(0)["isr"] == ["n0"]
    reply = replicas.ask("n0", {"type": "send", "key": key, "msg": 1}, seconds=LEADER_WAIT + 0.1)
    assert reply["type"] == "error" and reply["code"] == 11, reply
    assert "min-insync" in reply["text"]
    assert replicas.stored("n0", key) == []


def test_a_write_the_in_sync_set_never_comes_to_hold_gets_an_indefinite_error(tmp_path):
    replicas = Replicas(tmp_path, replication=ReplicationSettings(factor=3, min_insync=3))
    key = replicas.key_in(0)
    replicas.cut.add("n2")
    send = replicas.request("n0", {"type": "send", "key": key, "msg": 1})
    replicas.settle(REPLICATION_TIMEOUT + 0.2)
    assert replicas.replies[send]["type"] == "error" and replicas.replies[send]["code"] == 13, replicas.replies[send]


def test_when_a_leader_dies_an_in_sync_follower_leads_the_next_epoch_with_every_acknowledged_message(replicas):
    key = replicas.key_in(0)
    for value in range(3):
        assert replicas.ask("n1", {"type": "send", "key": key, "msg": value})["type"] == "send_ok"
    epoch = replicas.leadership(0)["epoch"]
    replicas.kill("n0")
    replicas.settle(ELECTION_TIMEOUT + 0.5)
    state = replicas.leadership(0)
    assert state["leader"] in ("n1", "n2") and state["epoch"] == epoch + 1 and "n0" not in state["isr"], state
    poll = replicas.ask("n1", {"type": "poll", "offsets": {key: 0}})
    assert poll["msgs"] == {key: [[0, 0], [1, 1], [2, 2]]}
    reply = replicas.ask("n2", {"type": "send", "key": key, "msg": 3})
    assert (reply["type"], reply.get("offset")) == ("send_ok", 3), reply


def failed_over_and_back(replicas: Replicas, key: str) -> dict:
    """n0, leader of partition 0, killed until another leads; restarted, and given time to catch up,
    rejoin the in-sync set and (if it does) take its lead back; lin-kv's state then."""
    assert replicas.ask("n1", {"type": "send", "key": key, "msg": 0})["type"] == "send_ok"
    replicas.kill("n0")
    replicas.settle(ELECTION_TIMEOUT + 0.5)
    assert replicas.leadership(0)["leader"] in ("n1", "n2")
    replicas.restart("n0")
    replicas.settle(LAG_TIMEOUT + TIMING.rebalance + TIMING.lease + 1.0)
    return replicas.leadership(0)


def test_after_a_failover_the_preferred_replica_back_in_sync_takes_its_lead_back(replicas):
    key = replicas.key_in(0)
    state = failed_over_and_back(replicas, key)
    assert (state["leader"], state["isr"]) == ("n0", ["n0", "n1", "n2"]), "the former leader stays in sync"
    reply = replicas.ask("n1", {"type": "send", "key": key, "msg": 1})
    assert (reply["type"], reply.get("offset")) == ("send_ok", 1), reply
    assert [replicas.stored(node, key) for node in replicas.ids] == [[(0, 0), (1, 1)]] * 3


def test_with_leader_rebalance_off_the_lead_stays_where_the_failover_put_it(tmp_path):
    replicas = Replicas(tmp_path, replication=ReplicationSettings(rebalance=0))
    try:
        state = failed_over_and_back(replicas, replicas.key_in(0))
        assert state["leader"] in ("n1", "n2") and "n0" in state["isr"], state
    finally:
        for storage in replicas.storages.values():
            storage.close()


def test_a_deposed_leader_acknowledges_nothing_of_its_own_and_drops_what_only_it_held(replicas):
    key = replicas.key_in(0)
    assert replicas.ask("n0", {"type": "send", "key": key, "msg": 0})["type"] == "send_ok"
    replicas.cut.add("n0")  # cut off: the others elect a new leader
    replicas.settle(ELECTION_TIMEOUT + 0.5)
    new_leader = leader_of(replicas, 0)
    assert new_leader != "n0"
    send = replicas.request("n0", {"type": "send", "key": key, "msg": 99})  # n0 still believes it leads
    replicas.cut.discard("n0")
    replicas.settle(LEADER_WAIT + REPLICATION_TIMEOUT)
    reply = replicas.replies[send]
    leaders_log = replicas.stored(new_leader, key)
    if reply["type"] == "send_ok":  # it waited, learned of the new leader, and sent the request there
        assert leaders_log[reply["offset"]] == (reply["offset"], 99)
    assert replicas.stored("n0", key) == leaders_log, "the old leader holds exactly the new leader's log (KIP-101)"
    poll = replicas.ask(new_leader, {"type": "poll", "offsets": {key: 0}})
    assert poll["msgs"] == {key: [list(entry) for entry in leaders_log]}


def test_a_follower_refuses_the_batches_of_an_epoch_older_than_its_leaders(replicas):
    key = replicas.key_in(0)
    replicas.kill("n0")
    replicas.settle(ELECTION_TIMEOUT + 0.5)
    follower = next(node for node in ("n1", "n2") if node != leader_of(replicas, 0))
    stale = {"type": "replicate", "part": 0, "epoch": 1, "covers": 10**6, "prev": [0, 0], "whole": True,
             "sends": [[key, 0, 1, 1, 42]]}
    replicas.queue.append(("n0", follower, message_line("n0", follower, stale)))
    replicas.cut.discard("n0")
    replicas.deliver_one()
    answer = replicas.last_sent(follower, "n0")
    assert answer["type"] == "replicate_refused" and answer["stale"] is True and answer["epoch"] == 2, answer
    assert replicas.stored(follower, key) == []


def test_a_node_that_lost_its_file_leaves_the_in_sync_set_and_is_filled_again_from_the_leader(replicas):
    keys = [replicas.key_in(part) for part in range(3)]
    for key in keys:
        for value in range(2):
            assert replicas.ask("n1", {"type": "send", "key": key, "msg": value})["type"] == "send_ok"
    assert replicas.ask("n1", {"type": "commit_offsets", "offsets": dict.fromkeys(keys, 1)})["type"] == "commit_offsets_ok"
    replicas.kill("n1", lose_file=True)
    replicas.restart("n1")
    replicas.settle(1.0)
    for part, key in enumerate(keys):
        state = replicas.leadership(part)
        assert state["leader"] != "n1" or state["epoch"] > 1, state
        assert replicas.stored("n1", key) == [(0, 0), (1, 1)]
        assert "n1" in state["isr"], state
    assert replicas.storages["n1"].log.committed_offsets(keys) == dict.fromkeys(keys, 1)


def test_a_leader_wiped_and_restarted_at_once_never_serves_an_empty_log(replicas):
    key = replicas.key_in(0)
    assert replicas.ask("n0", {"type": "send", "key": key, "msg": 7})["type"] == "send_ok"
    replicas.kill("n0", lose_file=True)
    replicas.restart("n0")  # before anyone noticed: lin-kv still names it leader of partition 0
    replicas.settle(0.5)
    state = replicas.leadership(0)
    assert state["leader"] != "n0" and state["epoch"] == 2, state
    for node in replicas.ids:
        poll = replicas.ask(node, {"type": "poll", "offsets": {key: 0}})
        assert poll["msgs"] == {key: [[0, 7]]}, (node, poll)


def test_committed_offsets_never_go_back_across_a_failover(replicas):
    key = replicas.key_in(0)
    for value in range(3):
        replicas.ask("n1", {"type": "send", "key": key, "msg": value})
    assert replicas.ask("n1", {"type": "commit_offsets", "offsets": {key: 2}})["type"] == "commit_offsets_ok"
    replicas.kill("n0")
    replicas.settle(ELECTION_TIMEOUT + 0.5)
    listing = replicas.ask("n1", {"type": "list_committed_offsets", "keys": [key]})
    assert listing["offsets"] == {key: 2}


def test_a_node_that_lost_its_file_as_the_only_in_sync_replica_never_leads_again_and_an_eligible_one_does(replicas):
    key = replicas.key_in(0)
    for value in range(3):
        assert replicas.ask("n0", {"type": "send", "key": key, "msg": value})["type"] == "send_ok"
    replicas.cut.update({"n1", "n2"})
    replicas.settle(LAG_TIMEOUT + 0.5)
    state = replicas.leadership(0)
    assert state["isr"] == ["n0"] and state["elr"] == ["n1", "n2"], state  # out of sync, eligible still
    replicas.kill("n0", lose_file=True)
    replicas.cut.clear()
    replicas.restart("n0")
    replicas.settle(ELECTION_TIMEOUT * 3)
    state = replicas.leadership(0)
    assert state["leader"] in ("n1", "n2") and replicas.nodes["n0"].replication.machines[0].lead is None, state
    for follower in ("n1", "n2"):  # what they hold is never truncated to an empty leader's log
        assert replicas.stored(follower, key) == [(0, 0), (1, 1), (2, 2)]
    replicas.settle(1.0)  # the wiped node is filled again, and the set is large enough to write
    reply = replicas.ask("n0", {"type": "send", "key": key, "msg": 99}, seconds=0.5)
    assert (reply["type"], reply.get("offset")) == ("send_ok", 3), reply
    assert replicas.stored("n0", key) == [(0, 0), (1, 1), (2, 2), (3, 99)]


def test_a_follower_restarted_empty_rejoins_the_in_sync_set_only_once_it_holds_the_log_again(replicas):
    key = replicas.key_in(0)
    for value in range(3):
        assert replicas.ask("n0", {"type": "send", "key": key, "msg": value})["type"] == "send_ok"
    replicas.kill("n2", lose_file=True)
    replicas.restart("n2")
    left = False
    for _ in range(400):  # message by message: once out, n2 is named in sync again only holding the log
        if not replicas.queue:
            replicas.settle(0.05)
        else:
            replicas.deliver_one()
        in_sync = "n2" in replicas.leadership(0)["isr"]
        left = left or not in_sync  # its new incarnation takes itself out first
        if left and in_sync:
            assert replicas.stored("n2", key) == [(0, 0), (1, 1), (2, 2)]
    assert left and "n2" in replicas.leadership(0)["isr"]


def test_a_split_commit_whose_part_here_the_in_sync_set_never_held_is_not_acknowledged(replicas):
    first, second = replicas.key_in(0), replicas.key_in(1)
    for key in (first, second):
        replicas.ask("n0", {"type": "send", "key": key, "msg": 1})
    commit = replicas.request("n0", {"type": "commit_offsets", "offsets": {first: 0, second: 0}})
    in_flight = list(replicas.queue)
    replicas.queue.clear()
    state = replicas.leadership(0)  # partition 0's lead moves to n1 before n1 holds n0's part
    moved = {"leader": "n1", "epoch": state["epoch"] + 1, "isr": ["n1", "n2"], "version": state["version"] + 1}
    assert replicas.kv.handle("n1", {"type": "cas", "key": "kafka-node/partition/0", "from": state, "to": moved,
                                     "msg_id": 1})["type"] == "cas_ok"
    replicas.queue.append(("n1", "n0", message_line("n1", "n0", {"type": "leadership", "part": 0, "state": moved})))
    replicas.queue.extend(m for m in in_flight if not (m[0] == "n0" and b'"replicate"' in m[2]))
    replicas.settle(0.5)
    reply = replicas.replies[commit]
    assert reply["type"] == "error" and reply["code"] == 13, reply


def test_each_transaction_is_a_batch_of_its_own_with_max_batch(tmp_path):
    replicas = Replicas(tmp_path, max_batch=1)
    first, second = replicas.key_in(0), replicas.key_in(0, 1)
    replicas.feed("n0", [message_line("c1", "n0", {"type": "send", "key": key, "msg": i, "msg_id": 50 + i})
                         for i, key in enumerate([first, second])])
    replicas.settle(0.3)
    batches = replicas.storages["n0"].conn.execute(
        "SELECT seq, count(*) FROM messages WHERE part = 0 GROUP BY seq ORDER BY seq").fetchall()
    assert batches == [(1, 1), (2, 1)]
    replicas.kill("n2")
    replicas.restart("n2")
    replicas.settle(1.0)
    assert replicas.leadership(0)["isr"] == ["n0", "n1", "n2"]
    assert replicas.stored("n2", second) == [(0, 1)]


@pytest.mark.parametrize("src", ["c1", "n7", "lin-kv"])
def test_a_replicas_message_from_anyone_but_another_node_changes_nothing(replicas, src):
    key = replicas.key_in(1)  # led by n1; its followers n0 and n2 are fed the forged messages
    forged = {"type": "replicate", "part": 1, "epoch": 99, "covers": 10**6, "prev": [0, 0], "whole": True,
              "sends": [[key, 0, 1, 99, "forged"]], "commits": {key: 5}}
    for node in ("n0", "n2"):
        step_count = len(replicas.queue)
        replicas.feed(node, [message_line(src, node, forged),
                             message_line(src, node, {"type": "leadership", "part": 1,
                                                      "state": {"leader": src, "epoch": 99, "isr": [src], "version": 99}}),
                             message_line(src, node, {"type": "replicate", "part": "not a number"})])
        assert len(replicas.queue) == step_count, "nothing is answered, nothing sent"
        assert replicas.stored(node, key) == []
    replicas.settle(0.3)
    assert replicas.leadership(1)["leader"] == "n1"
    assert replicas.ask("n0", {"type": "send", "key": key, "msg": 1})["offset"] == 0


def test_a_slow_follower_of_one_partition_holds_back_no_other_partitions_acks_or_reads(replicas):
    replicas.kill("n1")
    replicas.settle(ELECTION_TIMEOUT + 0.5)
    leader = leader_of(replicas, 1)  # n0 or n2 took partition 1 and leads its own as well
    other = "n2" if leader == "n0" else "n0"
    replicas.restart("n1")
    replicas.settle(1.0)
    own = int(leader[1:])
    assert leader_of(replicas, own) == leader
    replicas.delay(lambda src, dest, body: src == other and body.get("type") == "replicate_ok" and body.get("part") == 1)
    held = replicas.request(leader, {"type": "send", "key": replicas.key_in(1), "msg": "waits"})
    replicas.settle()  # every message carried; the clock stands still
    assert held not in replicas.replies, "partition 1's write waits for its slow follower"
    key = replicas.key_in(own)
    sent = replicas.request(leader, {"type": "send", "key": key, "msg": "goes"})
    for _ in range(4):  # two round trips: the batch to the followers, their answers
        replicas.deliver_one()
    replicas.settle()
    assert replicas.replies[sent] == {"type": "send_ok", "offset": 0, "in_reply_to": sent}
    poll = replicas.ask(leader, {"type": "poll", "offsets": {key: 0}})
    assert poll["msgs"] == {key: [[0, "goes"]]}
    assert held not in replicas.replies


def test_a_followers_catch_up_carries_only_the_committed_offsets_that_moved_of_100_000(tmp_path):
    replicas = Replicas(tmp_path)
    keys = [key for key in map(str, range(400_000)) if replicas.partition(key) == 0][:100_000]
    reply = replicas.ask("n0", {"type": "commit_offsets", "offsets": dict.fromkeys(keys, 1)})
    assert reply["type"] == "commit_offsets_ok", reply
    assert replicas.storages["n2"].log.committed_offsets(keys[-3:]) == dict.fromkeys(keys[-3:], 1)
    replicas.kill("n2")
    replicas.ask("n0", {"type": "commit_offsets", "offsets": {keys[7]: 5}}, seconds=0.1)
    start = len(replicas.sent)
    replicas.restart("n2")  # its file kept: its log is behind by one commit, and the leader knows what it holds
    replicas.settle(1.0)
    whole = [body for body in replicas.sent_since(start, lambda src, dest, body: (src, dest, body.get("type"), body.get("part"))
                                                  == ("n0", "n2", "replicate", 0)) if body.get("whole")]
    assert whole and all(len(body.get("commits", {})) <= 1 for body in whole), [len(b.get("commits", {})) for b in whole]
    assert replicas.storages["n2"].log.committed_offsets([keys[7]]) == {keys[7]: 5}
    assert "n2" in replicas.leadership(0)["isr"]
    for storage in replicas.storages.values():
        storage.close()
