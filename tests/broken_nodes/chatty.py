"""Correct, except that after a few requests it prints a debugging line on stdout, which
Maelstrom refuses: stdout is for protocol messages only."""

import json
import sys

from base import Node


class ChattyNode(Node):
    def serve(self) -> None:
        for count, line in enumerate(sys.stdin):
            request = json.loads(line)
            if count == 20:
                print(f"debug: handling {request['body']['type']}", flush=True)
            print(self.reply(request, self.handle(request["body"])), flush=True)


if __name__ == "__main__":
    ChattyNode().serve()
