"""A node that stores nothing: it answers every kafka request with a correctly shaped reply
(per-key counters for send offsets), reading stdin in big chunks and writing each chunk's
replies in one write, so that the load generator's own ceiling can be measured against it.

Run it as `python -m kafka_node.bench.trivial_node [--fill-polls]`.
"""

from __future__ import annotations

import argparse
import os
import sys

import msgspec

from kafka_node.clientkit.framing import LineBuffer, encode_lines, split_lines
from kafka_node.clientkit.wire import (
    CommitOffsetsOk,
    Error,
    InitOk,
    ListCommittedOffsetsOk,
    PollOk,
    Reply,
    ReplyBody,
    SendOk,
)

READ_BYTES = 1 << 20
POLL_MAX_PER_KEY = 100


class _Body(msgspec.Struct):
    type: str
    msg_id: int  # the load generator numbers every request
    key: str = ""
    offsets: dict[str, int] = {}
    node_id: str = ""


class _Request(msgspec.Struct):
    src: str
    body: _Body


class TrivialNode:
    """Answers without storing. With `fill_polls`, a poll gets made-up messages (value 0) at
    the offsets already handed out for each key from the asked one on (at most
    POLL_MAX_PER_KEY), so that a client which commits what it reads (as Maelstrom's do)
    commits, and a reader catching up (as in Maelstrom's final polls) catches up."""

    def __init__(self, fill_polls: bool = False) -> None:
        self.fill_polls = fill_polls
        self.node_id = "n0"
        self.next_offsets: dict[str, int] = {}
        self._decoder = msgspec.json.Decoder(_Request)

    def answer(self, body: _Body) -> ReplyBody:
        kind = body.type
        if kind == "send":
            offset = self.next_offsets.get(body.key, 0)
            self.next_offsets[body.key] = offset + 1
            return SendOk(in_reply_to=body.msg_id, offset=offset)
        if kind == "poll":
            msgs = self._made_up(body.offsets) if self.fill_polls else {}
            return PollOk(in_reply_to=body.msg_id, msgs=msgspec.Raw(msgspec.json.encode(msgs)))
        if kind == "commit_offsets":
            return CommitOffsetsOk(in_reply_to=body.msg_id)
        if kind == "list_committed_offsets":
            return ListCommittedOffsetsOk(in_reply_to=body.msg_id, offsets={})
        if kind == "init":
            self.node_id = body.node_id or self.node_id
            return InitOk(in_reply_to=body.msg_id)
        return Error(in_reply_to=body.msg_id, code=10, text=f"unsupported request type {kind!r}")

    def _made_up(self, offsets: dict[str, int]) -> dict[str, list[tuple[int, int]]]:
        msgs = {}
        for key, start in offsets.items():
            end = min(self.next_offsets.get(key, 0), start + POLL_MAX_PER_KEY)
            if end > start:
                msgs[key] = [(offset, 0) for offset in range(start, end)]
        return msgs

    def requests_in(self, lines: bytes) -> list[_Request]:
        try:
            return self._decoder.decode_lines(lines)
        except msgspec.DecodeError:
            found = []
            for line in split_lines(lines):
                try:
                    found.append(self._decoder.decode(line))
                except msgspec.DecodeError as error:
                    if line.strip():
                        print(f"trivial_node: skipped a line that is not a request ({error})", file=sys.stderr)
            return found

    def replies_to(self, lines: bytes) -> bytes:
        """The encoded replies to every request in `lines` (complete lines)."""
        replies = []
        for request in self.requests_in(lines):
            body = self.answer(request.body)
            replies.append(Reply(src=self.node_id, dest=request.src, body=body))
        return encode_lines(replies)

    def serve(self, stdin_fd: int = 0, stdout_fd: int = 1) -> None:
        requests = LineBuffer()
        while chunk := os.read(stdin_fd, READ_BYTES):
            if lines := requests.feed(chunk):
                out = memoryview(self.replies_to(lines))
                while out:
                    out = out[os.write(stdout_fd, out):]
        if (last := requests.take_pending()).strip():
            os.write(stdout_fd, self.replies_to(last + b"\n"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kafka_node.bench.trivial_node", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fill-polls", action="store_true",
                        help="answer polls with made-up messages (value 0) at the offsets handed out so far, "
                             "instead of none")
    args = parser.parse_args(argv)
    try:
        TrivialNode(args.fill_polls).serve()
    except (BrokenPipeError, KeyboardInterrupt):
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
