"""Correct across nodes: a message is appended with a compare-and-set loop on the key's log in
lin-kv, so no two sends, on any nodes, get the same offset, and no acknowledged one is lost."""

from typing import Any

from kv_base import KVNode


class CasNode(KVNode):
    def append(self, key: str, msg: Any) -> int:
        while True:
            log = self.kv_read(f"log/{key}", default=[])
            if self.kv_cas(f"log/{key}", log, [*log, msg]):
                return len(log)


if __name__ == "__main__":
    CasNode().serve()
