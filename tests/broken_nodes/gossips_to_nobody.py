"""Correct, but after every tenth send also tells a node "n9" about it, though the test has no
such node: the network counts and reports the message, and Maelstrom would refuse it."""

import json
from typing import Any

from base import Node


class GossipNode(Node):
    def handle(self, body: dict[str, Any]) -> dict[str, Any]:
        reply = super().handle(body)
        if body["type"] == "send" and self.sends % 10 == 0:
            print(json.dumps({"src": self.node_id, "dest": "n9", "body": {"type": "gossip", "key": body["key"]}}),
                  flush=True)
        return reply


if __name__ == "__main__":
    GossipNode().serve()
