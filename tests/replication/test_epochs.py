"""EpochCache answers every question (last, epoch_of, end_of_epoch, ranges, copy) as a plain list of
epochs (index = seq - 1) does, through any run of appends and truncations; it refuses a broken log."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafka_node.replication.epochs import EMPTY, EpochCache

# One step: ("append", how much the epoch rises) or ("truncate", the seq to keep up to).
steps = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.sampled_from([0, 0, 0, 1, 1, 3])),
        st.tuples(st.just("truncate"), st.integers(min_value=-2, max_value=30)),
    ),
    max_size=60,
)


def model_ranges(model: list[int]) -> list[tuple[int, int]]:
    """(epoch, first seq) of each run of equal epochs."""
    return [(epoch, seq) for seq, epoch in enumerate(model, start=1) if seq == 1 or model[seq - 2] != epoch]


def assert_agrees(cache: EpochCache, model: list[int]) -> None:
    last = len(model)
    assert cache.last == ((last, model[-1]) if model else EMPTY)
    for seq in range(-1, last + 3):
        expected = 0 if seq == 0 else model[seq - 1] if 1 <= seq <= last else None
        assert cache.epoch_of(seq) == expected, f"epoch_of({seq}) in {model}"
    for epoch in range(0, max(model, default=0) + 2):
        assert cache.end_of_epoch(epoch) == sum(1 for e in model if e <= epoch), f"end_of_epoch({epoch}) in {model}"
    assert cache.ranges == model_ranges(model)
    copied = cache.copy()
    assert copied == cache and copied.ranges == cache.ranges and copied.last == cache.last


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=3), steps)
def test_epoch_cache_agrees_with_a_list_of_epochs_after_every_append_and_truncation(first_epoch, ops):
    cache, model = EpochCache(), []
    assert_agrees(cache, model)
    for op, arg in ops:
        if op == "append":
            epoch = (model[-1] if model else first_epoch) + arg
            cache.append(len(model) + 1, epoch)
            model.append(epoch)
        else:
            cache.truncate_after(arg)
            del model[max(arg, 0):]
        assert_agrees(cache, model)


@settings(max_examples=100, deadline=None)
@given(steps, st.integers(min_value=1, max_value=4))
def test_a_copy_is_independent_of_its_original(ops, rise):
    cache, model = EpochCache(), []
    for op, arg in ops:
        if op == "append":
            epoch = (model[-1] if model else 0) + arg
            cache.append(len(model) + 1, epoch)
            model.append(epoch)
        else:
            cache.truncate_after(arg)
            del model[max(arg, 0):]
    copied = cache.copy()
    copied.append(len(model) + 1, (model[-1] if model else 0) + rise)
    copied.truncate_after(0)
    assert_agrees(cache, model)


@pytest.mark.parametrize(("ranges", "last_seq"), [
    ([], 0),
    ([(1, 1)], 3),
    ([(1, 1), (2, 4), (5, 6)], 9),
    ([(0, 1), (3, 2)], 2),
])
def test_a_cache_built_from_its_ranges_equals_the_one_that_made_them(ranges, last_seq):
    built = EpochCache(ranges, last_seq)
    assert built.ranges == ranges
    assert EpochCache(built.ranges, built.last[0]) == built


def cache_of(epochs: list[int]) -> EpochCache:
    cache = EpochCache()
    for seq, epoch in enumerate(epochs, start=1):
        cache.append(seq, epoch)
    return cache


@pytest.mark.parametrize(("epochs", "seq", "epoch"), [
    ([], 0, 1),  # the first batch is 1
    ([], 2, 1),
    ([1, 1], 2, 1),  # already there
    ([1, 1], 4, 1),  # a gap
    ([1, 1], 1, 1),  # behind the last
    ([1, 2], 3, 1),  # an older epoch
    ([3], 2, 0),
])
def test_append_of_a_batch_that_does_not_follow_or_of_an_older_epoch_raises_and_changes_nothing(epochs, seq, epoch):
    cache = cache_of(epochs)
    before = cache.copy()
    with pytest.raises(ValueError):
        cache.append(seq, epoch)
    assert cache == before
