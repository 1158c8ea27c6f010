"""Correct for the workload's clients and skips lines that are not JSON objects, but answers
send_ok to every request from the hostile client h1, however invalid it is."""

import json
import sys

from base import Node


class AcceptsHostileNode(Node):
    def serve(self) -> None:
        for line in sys.stdin.buffer:
            try:
                request = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if not isinstance(request, dict) or not isinstance(request.get("body"), dict):
                continue
            if request.get("src") == "h1":
                print(self.reply(request, {"type": "send_ok", "offset": 0}), flush=True)
            elif isinstance(request.get("src"), str):
                print(self.reply(request, self.handle(request["body"])), flush=True)


if __name__ == "__main__":
    AcceptsHostileNode().serve()
