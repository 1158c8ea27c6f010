"""The installed console scripts the tests run, and the deliberately broken nodes beside them."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

#: Where the Python running the tests has its console scripts: `make test` installs ours there.
BIN_DIR = Path(sys.executable).parent

#: The project's checkout, whose docs some tests hold to what the code does.
PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: Small nodes that are wrong on purpose, each in one way, for the runner and the benchmark.
BROKEN_NODES = Path(__file__).parent.parent / "broken_nodes"


def installed_script(name: str) -> str:
    """The console script installed beside the Python running the tests (else on PATH)."""
    path = BIN_DIR / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed; run `make test`")
    return found


def broken_node(script: str, *args: str) -> list[str]:
    """The command that runs one of the broken nodes."""
    return [sys.executable, str(BROKEN_NODES / script), *args]
