"""Appends with a lin-kv read followed by a write, not a compare-and-set: two nodes that read the
same log hand out the same offset, and the later write drops the earlier, acknowledged message."""

from typing import Any

from kv_base import KVNode


class RacyNode(KVNode):
    def append(self, key: str, msg: Any) -> int:
        log = self.kv_read(f"log/{key}", default=[])
        self.kv_write(f"log/{key}", [*log, msg])
        return len(log)


if __name__ == "__main__":
    RacyNode().serve()
