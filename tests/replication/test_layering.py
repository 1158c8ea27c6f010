"""From the node's source: wire/ is a leaf on msgspec, replication/ reaches storage only through sqlite_store.py,
the state machine's modules do no I/O and read no clock, and only node.py and cluster.py reach into replication/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "kafka_node"

#: What wire/ may import besides itself and msgspec: the standard library's declarations.
WIRE_STDLIB = {"__future__", "typing", "collections", "collections.abc", "dataclasses", "enum"}
#: The state machine's modules: no I/O, no clock, no randomness.
PURE = ["partition.py", "linkv.py", "leading.py", "insync.py", "following.py", "progress.py", "membership.py", "epochs.py",
        "ledger.py", "events.py", "admission.py", "directory.py"]
IMPURE = {"time", "os", "threading", "select", "socket", "random", "apsw", "sqlite3", "subprocess", "asyncio",
          "datetime"}


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of everything the module at `path` imports."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return names_imported(path.read_text(), parts if path.name == "__init__.py" else parts[:-1])


def names_imported(source: str, package: tuple[str, ...]) -> list[tuple[int, str]]:
    """(line, dotted name) of everything `source` imports: `import a.b` gives a.b, `from a import b`
    gives a.b (a submodule or a name of a), relative imports resolved against `package`; a call
    to __import__ or import_module gives "<dynamic import>"."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join([*package[:len(package) - node.level + 1], *([node.module] if node.module else [])]) \
                if node.level else node.module
            names += [(node.lineno, base if alias.name == "*" else f"{base}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute):
            called = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            if called in ("__import__", "import_module"):
                names.append((node.lineno, "<dynamic import>"))
    return names


def under(name: str, *prefixes: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def modules(folder: str = "") -> list[Path]:
    return sorted((PACKAGE / folder).glob("**/*.py"))


def where(path: Path, line: int, name: str) -> str:
    return f"{path.relative_to(PACKAGE.parent)}:{line} {name}"


def test_the_walk_names_every_kind_of_import_absolutely():
    source = ("import os.path\nfrom . import kv\nfrom .replica import PartitionState\nfrom ..storage import opening\n"
              "from msgspec import *\nimport importlib\nimportlib.import_module('time')\n")
    assert names_imported(source, ("kafka_node", "wire")) == [
        (1, "os.path"), (2, "kafka_node.wire.kv"), (3, "kafka_node.wire.replica.PartitionState"),
        (4, "kafka_node.storage.opening"), (5, "msgspec"), (6, "importlib"), (7, "<dynamic import>"),
    ]


def test_the_walk_sees_the_nodes_own_imports():
    assert any(name == "kafka_node.replication.shell.Replication" for _, name in imported(PACKAGE / "node.py"))
    assert any(name == "kafka_node.storage.Storage" for _, name in imported(PACKAGE / "replication" / "sqlite_store.py"))
    assert any(name == "msgspec" for _, name in imported(PACKAGE / "wire" / "replica.py"))
    assert any(name == "kafka_node.wire.replica.PartitionState" for _, name in imported(PACKAGE / "wire" / "kv.py"))


def test_wire_imports_only_msgspec_the_standard_librarys_declarations_and_itself():
    assert modules("wire")
    places = [where(path, line, name) for path in modules("wire") for line, name in imported(path)
              if not under(name, "msgspec", "kafka_node.wire", *WIRE_STDLIB)]
    assert places == []


def test_in_replication_only_sqlite_store_imports_storage_and_timing_only_the_busy_timeout():
    allowed = {"sqlite_store.py": ("kafka_node.storage",), "timing.py": ("kafka_node.storage.opening.BUSY_TIMEOUT_MS",)}
    places = [where(path, line, name) for path in modules("replication") for line, name in imported(path)
              if under(name, "kafka_node.storage") and not under(name, *allowed.get(path.name, ()))]
    assert places == []


@pytest.mark.parametrize("name", PURE)
def test_the_state_machines_modules_do_no_io_and_read_no_clock(name):
    path = PACKAGE / "replication" / name
    assert path.exists(), f"{name} is named in the layering rules but is not in kafka_node/replication/"
    places = [where(path, line, imported_name) for line, imported_name in imported(path)
              if imported_name.split(".")[0] in IMPURE or imported_name == "<dynamic import>"
              or under(imported_name, "kafka_node.storage")]
    assert places == []


def test_outside_replication_only_node_and_cluster_import_it_and_cluster_only_placement():
    allowed = {PACKAGE / "node.py": ("kafka_node.replication",),
               PACKAGE / "cluster.py": ("kafka_node.replication.placement",)}
    places = [where(path, line, name) for path in modules() if path.relative_to(PACKAGE).parts[0] != "replication"
              for line, name in imported(path)
              if under(name, "kafka_node.replication") and not under(name, *allowed.get(path, ()))]
    assert places == []
