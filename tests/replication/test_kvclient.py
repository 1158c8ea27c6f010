"""KvClient numbers each lin-kv call so that its reply finds it (once), reads what the reply says of
the partition's state, and gives calls up at their deadline, oldest first."""

from __future__ import annotations

import random

import msgspec
import pytest

from kafka_node import protocol
from kafka_node.replication.events import KvCall
from kafka_node.replication.kvclient import UNREADABLE_ERROR, KvAnswer, KvClient
from kafka_node.wire.kv import KEY_DOES_NOT_EXIST, KvCas, KvCasOk, KvRead, KvReadOk
from kafka_node.wire.replica import PartitionState

TIMEOUT = 1.0
STATE = PartitionState("n0", 2, ["n0", "n1"], 5)
NEXT = PartitionState("n1", 3, ["n1"], 6, ["n0"])


def client(seed: int = 7) -> KvClient:
    return KvClient("n0", TIMEOUT, random.Random(seed))


def msg_id(sent) -> int:
    return sent.body.msg_id


def test_a_read_and_a_cas_go_to_lin_kv_on_the_partitions_key():
    kv = client()
    read = kv.send(KvCall(3), 0.0)
    cas = kv.send(KvCall(3, STATE, NEXT), 0.0)
    create = kv.send(KvCall(4, None, STATE), 0.0)
    assert (read.src, read.dest) == ("n0", "lin-kv")
    assert read.body == KvRead(key="kafka-node/partition/3", msg_id=msg_id(read))
    assert cas.body == KvCas(key="kafka-node/partition/3", from_=STATE, to=NEXT, create_if_not_exists=False,
                             msg_id=msg_id(cas))
    assert create.body == KvCas(key="kafka-node/partition/4", from_=None, to=STATE, create_if_not_exists=True,
                                msg_id=msg_id(create))
    assert msg_id(cas) == msg_id(read) + 1 and msg_id(create) == msg_id(cas) + 1


def test_msg_ids_start_where_the_random_source_says():
    assert msg_id(client(1).send(KvCall(0), 0.0)) == msg_id(client(1).send(KvCall(0), 0.0))
    assert msg_id(client(1).send(KvCall(0), 0.0)) != msg_id(client(2).send(KvCall(0), 0.0))


def read_ok(value: bytes):
    return lambda in_reply_to: KvReadOk(in_reply_to=in_reply_to, value=msgspec.Raw(value))


READ = KvCall(0)
CAS = KvCall(0, STATE, NEXT)


@pytest.mark.parametrize(("call", "reply", "state", "error"), [
    (READ, read_ok(msgspec.json.encode(STATE)), STATE, None),
    (READ, read_ok(b'{"something": "else"}'), None, UNREADABLE_ERROR),  # no state of ours: read again later
    (READ, lambda i: protocol.PeerError(in_reply_to=i, code=KEY_DOES_NOT_EXIST, text="not found"), None,
     KEY_DOES_NOT_EXIST),
    (CAS, lambda i: KvCasOk(in_reply_to=i), NEXT, None),
    (CAS, lambda i: protocol.PeerError(in_reply_to=i, code=protocol.ErrorCode.PRECONDITION_FAILED), None,
     protocol.ErrorCode.PRECONDITION_FAILED),
    (CAS, lambda i: protocol.PeerSendOk(in_reply_to=i, offset=3), None, UNREADABLE_ERROR),
])
def test_a_reply_says_the_state_or_the_error_of_the_call_it_answers(call, reply, state, error):
    kv = client()
    other_call = KvCall(1)
    other = kv.send(other_call, 0.0)
    sent = kv.send(call, 0.0)
    assert kv.answered(msg_id(sent), reply(msg_id(sent))) == KvAnswer(call, state, error)
    assert kv.answered(msg_id(sent), reply(msg_id(sent))) is None  # answered once
    assert kv.answered(msg_id(other) + 100, reply(msg_id(other) + 100)) is None  # answers no call
    assert kv.answered(msg_id(other), read_ok(msgspec.json.encode(NEXT))(msg_id(other))) == KvAnswer(other_call, NEXT, None)


def test_calls_past_their_deadline_are_given_up_oldest_first_and_forgotten():
    kv = client()
    first = kv.send(READ, 0.0)
    second = kv.send(CAS, 0.5)
    third = kv.send(KvCall(2), 0.9)
    assert kv.expired(0.99) == []
    assert kv.expired(1.6) == [READ, CAS]
    assert kv.expired(1.89) == []
    assert kv.answered(msg_id(first), KvCasOk(in_reply_to=msg_id(first))) is None
    assert kv.answered(msg_id(second), KvCasOk(in_reply_to=msg_id(second))) is None
    assert kv.answered(msg_id(third), KvCasOk(in_reply_to=msg_id(third))) is not None
    assert kv.expired(10.0) == []
