"""The node processes of a run, each in a directory of its own: started, sent init, read, killed,
started again, paused, resumed, files lost; one printing a non-message or exiting aborts the run."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kafka_node.maelstrom.history import History
from kafka_node.maelstrom.hostile import HOSTILE_CLIENT, HostileTally
from kafka_node.maelstrom.network import InvalidOutput, Network, NodeLost, RpcTimeout, parse_envelope, parse_head
from kafka_node.maelstrom.process import EXIT_GRACE, NodeProcess, NodeStartError

#: Seconds a starting node has to answer init.
INIT_TIMEOUT = 10.0

log = logging.getLogger("kafka_node.maelstrom.run")


@dataclass
class DiskLoss:
    """A killed node's files deleted before it started again: whose, when (seconds since the
    start), on whose kill, and how many files and bytes were deleted."""

    node: str
    at: float
    by: str
    files: int
    bytes: int


def empty_directory(path: Path) -> tuple[int, int]:
    """Delete everything in `path` (links are deleted, never followed); the files and bytes
    deleted."""
    files = size = 0
    for top, folders, names in os.walk(path):  # a link to a folder is listed as a folder, not walked
        for name in [*names, *(folder for folder in folders if os.path.islink(os.path.join(top, folder)))]:
            files += 1
            size += os.lstat(os.path.join(top, name)).st_size
    shutil.rmtree(path)
    path.mkdir()
    return files, size


class Nodes:
    """Every node of the run, by id, each the latest incarnation of the program, run in
    `node_dirs`/<node id>/ (so a relative path it is given lands there); `aborted` is set
    (with `abort_reason`) once the run must end early. With `lose_disk`, a killed node's
    directory is emptied before it starts again."""

    def __init__(self, command: list[str], node_dirs: Path, log_dir: Path, net: Network, history: History,
                 node_ids: list[str], on_change: Callable[[], None] = lambda: None, lose_disk: bool = False,
                 log_stderr: bool = False) -> None:
        self.command = command
        self.node_dirs = node_dirs
        self.log_dir = log_dir  # <node id>.log for each node: its stderr, and our notes
        self.lose_disk = lose_disk
        self.log_stderr = log_stderr  # each stderr line in the run's log too, as Maelstrom's --log-stderr
        self.disk_losses: list[DiskLoss] = []
        self.net = net
        self.history = history
        self.node_ids = node_ids
        self.on_change = on_change  # called after each start and before each kill (memory samples)
        self.hostile: HostileTally | None = None
        self.processes: dict[str, NodeProcess] = {}
        self.exits: list[str] = []  # exits we did not cause
        self.abort_reason: str | None = None
        self.aborted = asyncio.Event()
        self._readers: dict[str, asyncio.Task] = {}
        for node_id in node_ids:
            net.add_node(node_id)

    async def start(self, node_id: str) -> None:
        """Start the node in its directory and send it init; NodeStartError if it does not
        answer init_ok."""
        directory = self.directory(node_id)
        directory.mkdir(parents=True, exist_ok=True)
        echo = (lambda line: log.info("%s stderr: %s", node_id, line)) if self.log_stderr else None
        node = NodeProcess(self.command, str(directory), self.log_dir / f"{node_id}.log", echo)
        await node.start()
        self.processes[node_id] = node
        self.net.attach(node_id, node)
        self._readers[node_id] = asyncio.create_task(self._read(node_id, node))
        init = {"type": "init", "node_id": node_id, "node_ids": self.node_ids}
        try:
            head, body = await self.net.call("c0", node_id, init, timeout=INIT_TIMEOUT, wait_ready=False)
        except (RpcTimeout, NodeLost) as error:
            raise NodeStartError(self.abort_reason or f"{node_id} did not answer init: {error}") from None
        if head.type != "init_ok":
            raise NodeStartError(f"{node_id} answered init with {bytes(body).decode(errors='replace')}")
        node.answered_init = True
        if node.exited_on_its_own:  # its reader saw the exit before we saw the reply
            self.abort(node.exited_on_its_own)
            raise NodeStartError(node.exited_on_its_own)
        self.net.up(node_id)
        log.info("%s started (pid %s) and answered init", node_id, node.pid)
        self.on_change()

    async def _read(self, node_id: str, node: NodeProcess) -> None:
        """Route each line the node prints (a reply to the hostile client is only counted);
        abort the test on one that is not a message."""
        hostile = self.hostile
        while line := await node.read_line():
            if node.killed and not line.endswith(b"\n"):
                break  # cut short by our SIGKILL
            try:
                envelope = parse_envelope(line)
                if hostile and envelope.dest == HOSTILE_CLIENT:
                    hostile.received(envelope.body, self.history.seconds())
                    continue
                head = parse_head(envelope, line)
            except InvalidOutput as error:
                self.abort(f"{node_id} printed something on stdout that is not a valid Maelstrom message: {error}")
                return
            self.net.route(node_id, envelope, head, line)
        status = await node.wait()
        if not node.killed:
            self._exited_on_its_own(node_id, node, status)

    def _exited_on_its_own(self, node_id: str, node: NodeProcess, status: int) -> None:
        """Maelstrom treats a node that exits without being killed as a crash of the test: once
        the node has answered init, abort (before, starting it fails, which says why)."""
        reason = f"{node_id} exited on its own with status {status} at {self.history.seconds():.1f} s"
        node.exited_on_its_own = reason
        self.exits.append(reason)
        node.append_to_log(f"--- maelstrom-kafka-test: {reason} ---")
        log.warning("%s", reason)
        if node.answered_init:
            self.abort(reason)
        else:
            self.net.lose(node_id, reason)

    def abort(self, reason: str) -> None:
        if self.abort_reason is None:
            self.abort_reason = reason
            log.error("test aborted: %s", reason)
        self.net.lose_all(reason)
        self.aborted.set()

    async def stop(self, node_id: str) -> None:
        """SIGKILL the node; give its stdout reader a few seconds to finish, then cancel it."""
        node, reader = self.processes.get(node_id), self._readers.get(node_id)
        if node:
            self.on_change()
            await node.kill()
        if reader:
            try:
                await asyncio.wait_for(reader, EXIT_GRACE)  # cancels the reader on timeout
            except TimeoutError:
                if node:
                    node.close()

    async def stop_all(self) -> None:
        for node_id in list(self.processes):
            await self.stop(node_id)

    def directory(self, node_id: str) -> Path:
        """The node's working directory."""
        return self.node_dirs / node_id

    def running(self, node_id: str) -> bool:
        """Whether the node's latest incarnation was started and not killed (paused or not)."""
        node = self.processes.get(node_id)
        return node is not None and not node.killed

    async def kill(self, node_id: str, why: str, *, stays_down: bool) -> str:
        """SIGKILL the node, then, with disk loss, empty its directory. Until it is started
        again, what is sent to it is dropped if it `stays_down` (the kill nemesis), else held
        for it, with requests in flight failed at once (a restart). What was done, as the
        nemesis records it: killed, killed-files-lost, or not-running."""
        if not self.running(node_id):
            return "not-running"
        at = self.history.seconds()
        if stays_down:
            self.net.take_down(node_id)
        else:
            self.net.lose(node_id, f"{node_id} was killed by {why}")
        await self.stop(node_id)
        done, note = "killed", f"SIGKILL at {at:.3f} s ({why})"
        if self.lose_disk:
            files, size = empty_directory(self.directory(node_id))
            self.disk_losses.append(DiskLoss(node_id, round(at, 3), why, files, size))
            done, note = "killed-files-lost", f"{note}; its files were lost ({files} files, {size} bytes deleted)"
        note += "; down until it is started again" if stays_down else "; restarting"
        self.processes[node_id].append_to_log(f"--- maelstrom-kafka-test: {note} ---")
        log.info("%s killed (SIGKILL) by %s%s", node_id, why, "; its files were lost" if self.lose_disk else "")
        return done

    async def start_again(self, node_id: str) -> str:
        """Start a killed node again, with the same command in the same directory, and send it
        init: started, already-running, or not-started (the run is then aborted)."""
        if self.running(node_id):
            return "already-running"
        try:
            await self.start(node_id)
        except NodeStartError as error:
            self.abort(f"{node_id} could not be started again: {error}")
            return "not-started"
        return "started"

    async def pause(self, node_id: str, why: str) -> str:
        """SIGSTOP the node: paused, already-paused or not-running."""
        node = self.processes.get(node_id)
        if node is None or node.killed:
            return "not-running"
        if node.paused:
            return "already-paused"
        if not node.pause():
            return "not-running"
        node.append_to_log(f"--- maelstrom-kafka-test: SIGSTOP at {self.history.seconds():.3f} s ({why}) ---")
        log.info("%s paused (SIGSTOP) by %s", node_id, why)
        return "paused"

    async def resume(self, node_id: str, why: str) -> str:
        """SIGCONT the node if it is paused: resumed, not-paused or not-running."""
        node = self.processes.get(node_id)
        if node is None or node.killed:
            return "not-running"
        if not node.paused:
            return "not-paused"
        node.append_to_log(f"--- maelstrom-kafka-test: SIGCONT at {self.history.seconds():.3f} s ({why}) ---")
        if not node.resume():
            return "not-running"
        log.info("%s resumed (SIGCONT) by %s", node_id, why)
        return "resumed"

    def live(self, node_id: str) -> NodeProcess | None:
        """The node's process if it is running and reachable now, else None."""
        node = self.processes.get(node_id)
        if node is None or node.killed or self.net.gone[node_id]:
            return None
        return node
