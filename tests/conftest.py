"""The fixture every node test uses: `start_node`, the installed `maelstrom-kafka` in a child
process on a file in the test's own directory. Helpers shared by the tests are in `support/`."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.node_child import NodeChild


@pytest.fixture
def start_node(tmp_path):
    """Start maelstrom-kafka children (`--db` defaults to tmp_path/log.db), each under `wrapper`
    (a command that execs it) if given; all killed afterwards."""
    started: list[NodeChild] = []

    def start(*args: str, db: Path | None = None, init: bool = True, env: dict[str, str] | None = None,
              cwd: Path | None = None, wrapper: list[str] | None = None) -> NodeChild:
        full_args = list(args)
        if "--db" not in full_args and not (env and "KAFKA_NODE_DB" in env):
            full_args = ["--db", str(db or tmp_path / "log.db"), *full_args]
        node = NodeChild(full_args, tmp_path / f"node-{len(started)}.stderr", env=env, cwd=cwd, wrapper=wrapper)
        started.append(node)
        if init:
            node.init()
        return node

    yield start
    for node in started:
        node.cleanup()
