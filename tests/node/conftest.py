"""Fixtures the node's tests share: replicated nodes' cores on their own SQLite files, closed after
each test."""

from __future__ import annotations

import pytest

from support.replicas import Replicas


@pytest.fixture
def replicas(tmp_path):
    made = Replicas(tmp_path)
    yield made
    for storage in made.storages.values():
        storage.close()
