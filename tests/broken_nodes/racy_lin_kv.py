"""Allocates a key's next offset with a lin-kv read followed by a write, not a compare-and-set:
two nodes that read the same value hand out the same offset, and the later message overwrites
the earlier, acknowledged one."""

from kv_base import KVNode


class RacyNode(KVNode):
    def allocate(self, key: str) -> int:
        offset = self.kv_read(f"next/{key}", default=0)
        self.kv_write(f"next/{key}", offset + 1)
        return offset


if __name__ == "__main__":
    RacyNode().serve()
