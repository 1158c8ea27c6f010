"""What a read may see of commits not yet durable, against a model kept the plain way: every
commit's writes, and which commits a sync has covered."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kafka_node.unsynced import Unsynced

KEYS = ["a", "b", "c"]

# Each step: a commit (keys it sent to, keys whose committed offset it moved), or a sync that
# makes every commit so far durable, or one that makes all but the newest durable.
steps = st.lists(st.one_of(
    st.tuples(st.just("commit"), st.sets(st.sampled_from(KEYS)), st.sets(st.sampled_from(KEYS))),
    st.tuples(st.sampled_from(["sync all", "sync but the last"]), st.just(set()), st.just(set())),
), max_size=30)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_polls_read_below_every_pending_send_and_listings_wait_for_every_pending_commit(steps):
    unsynced = Unsynced()
    commits: list[tuple[dict[str, int], set[str]]] = []  # commit n is commits[n - 1]
    next_offset = dict.fromkeys(KEYS, 0)
    durable = 0
    for kind, sent, committed in steps:
        if kind == "commit":
            first = {}
            for key in sent:
                first[key] = next_offset[key]
                next_offset[key] += 2
            commits.append((first, committed))
            unsynced.record(len(commits), first, committed, durable)
        else:
            durable = max(durable, len(commits) - (kind == "sync but the last"))
        pending = [(n, *commits[n - 1]) for n in range(durable + 1, len(commits) + 1)]
        expected_below = {key: min(first[key] for _, first, _ in pending if key in first)
                          for key in KEYS if any(key in first for _, first, _ in pending)}
        assert unsynced.poll_below(KEYS, durable) == expected_below
        for key in KEYS:
            waits = max((n for n, _, moved in pending if key in moved), default=0)
            assert unsynced.listing_waits_for([key], durable) == waits
        assert len(unsynced) <= sum(len(first) for _, first, _ in pending) + len(KEYS), "entries already durable kept"


def test_a_key_sent_to_by_every_commit_and_never_polled_holds_only_the_commits_not_yet_durable():
    """Under nonstop sends the sync is always one commit behind, and nobody polls: the entries
    must still not pile up (each commit's are dropped once a later one finds it durable)."""
    unsynced = Unsynced()
    for commit in range(1, 20_001):
        unsynced.record(commit, {"hot": 2 * commit}, {"hot"}, durable=commit - 1)
    assert len(unsynced) <= 2
    assert unsynced.poll_below(["hot"], 19_999) == {"hot": 40_000}
