"""Correct, but never answers every twentieth request, though it applies it: the client must
time out, record the operation as indeterminate (info) and be replaced by a fresh client."""

import json
import sys

from base import Node


class SilentNode(Node):
    def serve(self) -> None:
        for count, line in enumerate(sys.stdin):
            request = json.loads(line)
            reply = self.reply(request, self.handle(request["body"]))
            if count % 20 != 19:
                print(reply, flush=True)


if __name__ == "__main__":
    SilentNode().serve()
