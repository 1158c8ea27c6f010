"""Maelstrom's services as the runner provides them, against what src/maelstrom/service.clj
does: lin-kv's read/write/cas and its errors, seq-kv's stale but per-caller monotonic reads,
lww-kv's replicas that never converge, lin-tso's counter, and silence for unknown requests."""

from __future__ import annotations

import random

import pytest

from kafka_node.maelstrom.services import LinKV, LinTSO, LwwKV, SeqKV, default_services


def test_lin_kv_reads_writes_and_compares_and_sets():
    kv = LinKV()
    assert kv.handle("n0", {"type": "read", "key": "x"}) == {"type": "error", "code": 20, "text": "key does not exist"}
    assert kv.handle("n0", {"type": "cas", "key": "x", "from": 0, "to": 1})["code"] == 20
    assert kv.handle("n0", {"type": "cas", "key": "x", "from": 0, "to": 1, "create_if_not_exists": True}) == {
        "type": "cas_ok"}
    assert kv.handle("n1", {"type": "read", "key": "x"}) == {"type": "read_ok", "value": 1}
    failed = kv.handle("n1", {"type": "cas", "key": "x", "from": 0, "to": 2})
    assert failed["code"] == 22 and "current value 1 is not 0" in failed["text"]
    assert kv.handle("n1", {"type": "write", "key": "x", "value": [1, {"a": None}]}) == {"type": "write_ok"}
    assert kv.handle("n0", {"type": "cas", "key": "x", "from": [1, {"a": None}], "to": 3}) == {"type": "cas_ok"}


def test_values_and_keys_compare_as_clojure_compares_them():
    kv = LinKV()
    kv.handle("n0", {"type": "write", "key": 1, "value": 1})
    assert kv.handle("n0", {"type": "read", "key": "1"})["code"] == 20  # the key 1 is not "1"
    assert kv.handle("n0", {"type": "cas", "key": 1, "from": 1.0, "to": 2})["code"] == 22  # 1.0 is not 1
    assert kv.handle("n0", {"type": "cas", "key": 1, "from": 1, "to": 2}) == {"type": "cas_ok"}


@pytest.mark.parametrize("service", ["lin-kv", "seq-kv", "lww-kv", "lin-tso"])
def test_an_unknown_request_gets_no_answer(service):
    # Maelstrom's service throws on a type it does not know, and its thread answers nothing.
    assert default_services(random.Random(1))[service].handle("n0", {"type": "delete", "key": "x"}) is None


def test_seq_kv_may_serve_stale_reads_but_never_goes_back_for_one_caller():
    kv = SeqKV(random.Random(3))
    for value in range(10):
        assert kv.handle("n0", {"type": "write", "key": "x", "value": value}) == {"type": "write_ok"}
    seen = [kv.handle("n1", {"type": "read", "key": "x"}) for _ in range(40)]
    values = [reply.get("value") for reply in seen]  # a read before the first write finds no key
    known = [v for v in values if v is not None]
    assert known == sorted(known), "one caller's reads never go back"
    assert min(known) < 9 and values[-1] == 9, "stale at first, caught up in the end"
    # A change always applies to the newest state, and its caller sees it from then on.
    assert kv.handle("n2", {"type": "cas", "key": "x", "from": 9, "to": 10}) == {"type": "cas_ok"}
    assert all(kv.handle("n2", {"type": "read", "key": "x"})["value"] == 10 for _ in range(10))


def test_seq_kv_serves_a_cas_that_changes_nothing_from_a_stale_state():
    kv = SeqKV(random.Random(5))
    kv.handle("n0", {"type": "write", "key": "x", "value": 1})
    kv.handle("n0", {"type": "write", "key": "x", "value": 2})
    answers = {kv.handle(f"n{i}", {"type": "cas", "key": "x", "from": 9, "to": 3})["code"] for i in range(1, 30)}
    assert answers == {20, 22}  # stale states without the key, or with another value


def test_lww_kv_replicas_never_converge():
    kv = LwwKV(random.Random(2))
    kv.handle("n0", {"type": "write", "key": "x", "value": 1})
    reads = {str(kv.handle("n0", {"type": "read", "key": "x"})) for _ in range(30)}
    assert reads == {"{'type': 'read_ok', 'value': 1}", "{'type': 'error', 'code': 20, 'text': 'key does not exist'}"}
    # and its cas never creates a key
    assert kv.handle("n0", {"type": "cas", "key": "y", "from": 0, "to": 1, "create_if_not_exists": True})["code"] == 20


def test_lin_tso_counts_from_zero():
    tso = LinTSO()
    assert [tso.handle("n0", {"type": "ts"})["ts"] for _ in range(3)] == [0, 1, 2]
