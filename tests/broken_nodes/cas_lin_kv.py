"""Correct across nodes: a key's next offset is taken with a compare-and-set loop on lin-kv, so
no two sends, on any nodes, get the same offset."""

from kv_base import KVNode


class CasNode(KVNode):
    def allocate(self, key: str) -> int:
        while True:
            offset = self.kv_read(f"next/{key}", default=0)
            if self.kv_cas(f"next/{key}", offset, offset + 1):
                return offset


if __name__ == "__main__":
    CasNode().serve()
