"""Random operation sequences against the storage layer and an in-memory model, with reopens
from disk in between: offsets unique, dense and increasing, polls contiguous, commits monotonic."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import msgspec
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kafka_node.storage import Durability, Storage

KEYS = st.sampled_from(["a", "b", "", "ü 🎉"])
VALUES = st.one_of(st.integers(), st.text(max_size=5), st.none(), st.lists(st.integers(), max_size=3))


class StorageAgainstModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.mkdtemp(prefix="kafka-node-model-")
        self.path = str(Path(self.directory) / "log.db")
        self.storage = Storage.open(self.path, Durability.NORMAL)
        self.logs: dict[str, list] = {}
        self.committed: dict[str, int] = {}

    @rule(batch=st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=6))
    def append(self, batch):
        with self.storage.log.transaction():
            offsets = self.storage.log.append_many([(k, msgspec.json.encode(v).decode()) for k, v in batch])
        for (key, value), offset in zip(batch, offsets, strict=True):
            log = self.logs.setdefault(key, [])
            assert offset == len(log), "offsets must be dense and increasing per key"
            log.append(value)

    @rule(key=KEYS, offset=st.integers(0, 20))
    def commit(self, key, offset):
        with self.storage.log.transaction():
            self.storage.log.commit_offsets({key: offset})
        self.committed[key] = max(self.committed.get(key, -1), offset)

    @rule(starts=st.dictionaries(KEYS, st.integers(0, 8), max_size=4), limit=st.integers(1, 4),
          max_bytes=st.integers(1, 40), below=st.dictionaries(KEYS, st.integers(0, 10), max_size=3))
    def poll(self, starts, limit, max_bytes, below):
        # As the node reads: no transaction; `below` as for keys commits not yet durable wrote.
        found = msgspec.json.decode(self.storage.log.read_from(starts, limit, max_bytes, below))
        assert found == self.expected_poll(starts, limit, max_bytes, below)

    def expected_poll(self, starts, limit, max_bytes, below):
        """The model's answer: per key in the order asked, the messages from its offset on, at
        most `limit` and only below its offset in `below`, while their JSON text adds up to at
        most `max_bytes`; the first message of the reply counts as fitting whatever its size."""
        expected: dict[str, list] = {}
        used = 0
        for key, start in starts.items():
            for offset in range(start, min(start + limit, len(self.logs.get(key, [])), below.get(key, 1 << 30))):
                value = self.logs[key][offset]
                size = len(msgspec.json.encode(value))
                if expected and used + size > max_bytes:
                    return expected
                expected.setdefault(key, []).append([offset, value])
                used += size
        return expected

    @rule()
    def reopen(self):
        self.storage.close()
        self.storage = Storage.open(self.path, Durability.NORMAL)

    @precondition(lambda self: self.logs)
    @rule()
    def reopen_after_abandoning(self):
        """Close without a checkpoint, as after a crash: the WAL must be replayed."""
        self.storage.distrust()  # closed as after a failed sync: no checkpoint, the WAL left
        self.storage.close()
        self.storage = Storage.open(self.path, Durability.NORMAL)

    @invariant()
    def committed_offsets_match_and_never_go_back(self):
        assert self.storage.log.committed_offsets(["a", "b", "", "ü 🎉", "never"]) == self.committed

    def teardown(self):
        self.storage.close()
        shutil.rmtree(self.directory)


StorageAgainstModel.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
test_storage_matches_the_model_across_reopens = StorageAgainstModel.TestCase


@pytest.mark.parametrize(
    ("start", "limit", "below", "expected_offsets"),
    [
        (1, 4, 2, [1]),  # one message left below the bound
        (1, 4, 4, [1, 2, 3]),  # the bound cuts the limit short
        (1, 2, 9, [1, 2]),  # the limit comes first
        (3, 4, 3, None),  # nothing below the bound: the key is left out
        (3, 4, 1, None),
    ],
)
def test_a_poll_reads_a_key_only_below_its_bound(tmp_path, start, limit, below, expected_offsets):
    """Each bound case once, as the random sequences above reach some of them only rarely."""
    storage = Storage.open(str(tmp_path / "log.db"), Durability.NORMAL)
    try:
        with storage.log.transaction():
            storage.log.append_many([("k", str(value)) for value in range(10, 15)])
            storage.log.append_many([("other", "0")])
        found = msgspec.json.decode(storage.log.read_from({"k": start, "other": 0}, limit, 1 << 20, {"k": below}))
    finally:
        storage.close()
    expected = {"other": [[0, 0]]}
    if expected_offsets is not None:
        expected = {"k": [[offset, 10 + offset] for offset in expected_offsets], **expected}
    assert found == expected
