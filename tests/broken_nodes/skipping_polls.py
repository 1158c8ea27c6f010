"""Stores correctly, but its polls skip a message. `--mode within`: a reply of three or more
messages leaves out its second one. `--mode between`: a poll from a non-zero offset leaves out
the message at that offset, so the client's next poll jumps past it."""

import argparse

from base import Node


class SkippingNode(Node):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def read(self, key: str, start: int) -> list[list]:
        pairs = super().read(key, start)
        if self.mode == "within" and len(pairs) >= 3:
            return pairs[:1] + pairs[2:]
        if self.mode == "between" and start > 0 and pairs and pairs[0][0] == start:
            return pairs[1:]
        return pairs


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["within", "between"], required=True)
    SkippingNode(parser.parse_args().mode).serve()
