"""Jepsen's db nemesis on real nodes (our node, in child processes, driven in this process): the
node specs, a kill that keeps a node down and drops what is sent to it, a pause that holds its
replies until the resume, disk loss, and the db package's flip-flops and final operations."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kafka_node.maelstrom.db_nemesis import NODE_SPECS, DbNemesis, DbPackage, db_nodes
from kafka_node.maelstrom.history import History
from kafka_node.maelstrom.network import Envelope, Head, Network, RpcTimeout
from kafka_node.maelstrom.nodes import Nodes, empty_directory

from support.logs import stored_messages
from support.scripts import installed_script

#: Seconds a request waits for its reply in these tests.
TIMEOUT = 0.3


def test_the_node_specs_are_jepsens_for_a_database_without_primaries():
    assert NODE_SPECS == (None, "one", "minority-third", "minority", "majority", "all")


@pytest.mark.parametrize(("count", "sizes"), [
    (1, {"one": 1, "minority-third": 0, "minority": 0, "majority": 1, "all": 1}),
    (3, {"one": 1, "minority-third": 0, "minority": 1, "majority": 2, "all": 3}),
    (5, {"one": 1, "minority-third": 1, "minority": 2, "majority": 3, "all": 5}),
    (7, {"one": 1, "minority-third": 2, "minority": 3, "majority": 4, "all": 7}),
])
def test_each_spec_picks_as_many_distinct_nodes_as_jepsens_db_nodes(count, sizes):
    nodes = [f"n{i}" for i in range(count)]
    rng = random.Random(count)
    for spec, size in sizes.items():
        for _ in range(10):
            picked = db_nodes(spec, nodes, rng)
            assert len(picked) == len(set(picked)) == size and set(picked) <= set(nodes), spec
    assert db_nodes("all", nodes, rng) == nodes
    subsets = [db_nodes(None, nodes, rng) for _ in range(200)]
    assert {len(subset) for subset in subsets} == set(range(1, count + 1)), "a random non-empty subset"
    assert db_nodes(["n0"], nodes, rng) == ["n0"], "the nodes themselves, as --restart-every names them"


@contextlib.asynccontextmanager
async def our_nodes(tmp_path: Path, count: int, lose_disk: bool = False) -> AsyncIterator[tuple[Nodes, DbNemesis]]:
    """`count` of our nodes, each on `{node_id}.db` in its own directory, and a db nemesis."""
    history = History()
    net = Network(TIMEOUT, services={}, clock=history.seconds)
    ids = [f"n{i}" for i in range(count)]
    (tmp_path / "node-logs").mkdir()
    nodes = Nodes([installed_script("maelstrom-kafka"), "--db", "{node_id}.db"], tmp_path / "nodes",
                  tmp_path / "node-logs", net, history, ids, lose_disk=lose_disk)
    try:
        await asyncio.gather(*(nodes.start(node) for node in ids))
        yield nodes, DbNemesis(nodes, history, ids, random.Random(1))
    finally:
        await nodes.stop_all()


def gossip(net: Network, src: str, dest: str) -> None:
    net.route(src, Envelope(src, dest, b'{"type":"gossip"}'), Head("gossip"), b"")


def test_a_killed_node_stays_down_unanswering_and_dropping_messages_until_started(tmp_path):
    async def scenario() -> None:
        async with our_nodes(tmp_path, 2) as (nodes, nemesis):
            net = nodes.net
            assert await nemesis.kill(["n1"]) == {"n1": "killed"}
            began = net.clock()
            with pytest.raises(RpcTimeout, match="n1 is down"):
                await net.call("c1", "n1", {"type": "poll", "offsets": {}})
            assert net.clock() - began >= TIMEOUT * 0.9, "unanswered: the client waits out its timeout"
            gossip(net, "n0", "n1")
            assert net.dropped_while_down == 2 and net.dropped == 0, "counted apart from partitions' drops"
            assert await nemesis.start() == {"n0": "already-running", "n1": "started"}
            head, _ = await net.call("c1", "n1", {"type": "poll", "offsets": {}})
            assert head.type == "poll_ok"
            assert [(op.f, op.value) for op in nodes.history.ops] == [
                ("kill", ["n1"]), ("kill", {"n1": "killed"}),
                ("start", "all"), ("start", {"n0": "already-running", "n1": "started"})]
        log = (tmp_path / "node-logs" / "n1.log").read_text()
        assert log.count("initialised as n1") == 2, "sent init again"
        assert "SIGKILL" in log and "down until it is started again" in log

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_a_paused_node_answers_only_once_resumed(tmp_path):
    async def scenario() -> None:
        async with our_nodes(tmp_path, 1) as (nodes, nemesis):
            assert await nemesis.pause("all") == {"n0": "paused"}
            assert await nemesis.pause(["n0"]) == {"n0": "already-paused"}
            asked = asyncio.create_task(nodes.net.call("c1", "n0", {"type": "send", "key": "k", "msg": 1}, timeout=10))
            await asyncio.sleep(3 * TIMEOUT)
            assert not asked.done(), "no reply while paused"
            assert await nemesis.resume() == {"n0": "resumed"}
            head, _ = await asyncio.wait_for(asked, 10)
            assert head.type == "send_ok", "the request waited in its stdin, and is answered now"
            assert await nemesis.resume() == {"n0": "not-paused"}
        log = (tmp_path / "node-logs" / "n0.log").read_text()
        assert log.index("SIGSTOP") < log.index("SIGCONT")

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_disk_loss_deletes_the_nodes_file_and_it_comes_back_with_an_empty_log(tmp_path):
    async def scenario() -> None:
        async with our_nodes(tmp_path, 1, lose_disk=True) as (nodes, nemesis):
            net = nodes.net
            for msg in range(3):
                await net.call("c1", "n0", {"type": "send", "key": "k", "msg": msg})
            db = tmp_path / "nodes" / "n0" / "n0.db"
            assert len(stored_messages(db)) == 3
            assert await nemesis.kill(["n0"]) == {"n0": "killed-files-lost"}
            assert not list(db.parent.iterdir()), "the node's directory is empty"
            (loss,) = nodes.disk_losses
            assert (loss.node, loss.by) == ("n0", "the kill nemesis") and loss.files >= 1 and loss.bytes > 0
            assert await nemesis.start() == {"n0": "started"}
            _, polled = await net.call("c1", "n0", {"type": "poll", "offsets": {"k": 0}})
            assert b'"k"' not in bytes(polled), "nothing of the lost log"
            _, sent = await net.call("c1", "n0", {"type": "send", "key": "k", "msg": "again"})
            assert b'"offset":0' in bytes(sent)
            assert stored_messages(db) == {("k", 0): "again"}
        assert "its files were lost" in (tmp_path / "node-logs" / "n0.log").read_text()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_emptying_a_directory_deletes_links_and_never_what_they_point_to(tmp_path):
    kept = tmp_path / "elsewhere.db"
    kept.write_bytes(b"x" * 10)
    directory = tmp_path / "n0"
    (directory / "sub").mkdir(parents=True)
    (directory / "sub" / "a").write_bytes(b"abc")
    os.symlink(kept, directory / "link")
    os.symlink(tmp_path, directory / "dir-link")
    files, size = empty_directory(directory)
    assert directory.is_dir() and not list(directory.iterdir())
    assert kept.read_bytes() == b"x" * 10 and files == 3 and size >= 3


def test_the_db_package_flip_flops_each_fault_and_ends_resuming_then_starting(tmp_path):
    async def scenario() -> list:
        async with our_nodes(tmp_path, 2) as (nodes, nemesis):
            package = DbPackage(nemesis, frozenset({"kill", "pause"}))
            for _ in range(8):
                await package.step()
            await package.final()
            assert all(period.end is not None for period in package.kills + package.pauses)
            assert all(nodes.running(node) and not nodes.processes[node].paused for node in ("n0", "n1"))
            return nodes.history.ops

    ops = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert all(asked.f == done.f and isinstance(done.value, dict) for asked, done in zip(ops[::2], ops[1::2], strict=True))
    fs = [op.f for op in ops[::2]]
    assert fs[-2:] == ["resume", "start"], "Jepsen's final generator: resume all, then start all"
    for fault, recovery in (("kill", "start"), ("pause", "resume")):
        mine = [f for f in fs[:-2] if f in (fault, recovery)]
        assert mine and mine[0] == fault and all(a != b for a, b in itertools.pairwise(mine)), (fault, fs)
