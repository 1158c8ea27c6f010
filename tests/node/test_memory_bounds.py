"""Memory bounds measured, not assumed: the node's peak resident memory (VmHWM) while it
handles the largest inputs it accepts and the largest replies it gives."""

from __future__ import annotations

from kafka_node.clientkit import procfs

MIB = 1 << 20


def peak_memory_mib(pid: int) -> float:
    memory = procfs.read_memory(pid)
    assert memory is not None, "no VmHWM in /proc/PID/status"
    return memory.peak_kib / 1024


def test_three_20_mib_messages_are_polled_one_per_reply_within_200_mib(start_node):
    """The poll's byte budget (4 MiB by default) holds a reply to one message when the first
    message alone is bigger; the consumer still reads everything, one poll at a time."""
    node = start_node()
    payload = "x" * (20 * MIB)
    for value in range(3):
        assert node.request({"type": "send", "key": "big", "msg": [value, payload]})["offset"] == value
    read = []
    while len(read) < 3:
        msgs = node.request({"type": "poll", "offsets": {"big": len(read)}})["msgs"]
        assert len(msgs["big"]) == 1, "one 20 MiB message is over the budget: it comes alone"
        read += msgs["big"]
    assert [(offset, msg[0], len(msg[1])) for offset, msg in read] == [(v, v, 20 * MIB) for v in range(3)]
    peak = peak_memory_mib(node.proc.pid)
    # About 25 MiB of interpreter and libraries, plus a few copies of one message in flight.
    assert peak < 200, f"VmHWM {peak:.0f} MiB after sending and polling three 20 MiB messages"


def test_a_60_mb_line_that_is_not_a_request_costs_one_copy_of_it_and_the_next_request_is_served(start_node):
    node = start_node()
    node.write(b"[" + b"1," * (30_000_000 - 1) + b"1]\n")  # 60 MB, under the 64 MiB line limit
    assert node.request({"type": "send", "key": "k", "msg": "after"})["offset"] == 0
    known = b'{"src":"c1","dest":"n0","body":{"type":"send","msg_id":77,"key":5,"msg":['
    node.write(known + b"1," * (30_000_000 - 1) + b"1]}}\n")
    reply = node.read_message(timeout=60)["body"]
    assert (reply["type"], reply["code"], reply["in_reply_to"]) == ("error", 12, 77)
    assert "`$.body.key` must be a string" in reply["text"]
    assert node.request({"type": "poll", "offsets": {"k": 0}})["msgs"] == {"k": [[0, "after"]]}
    peak = peak_memory_mib(node.proc.pid)
    # About 25 MiB of interpreter and libraries, plus one copy of a line (57 MiB) and change.
    assert peak < 110, f"VmHWM {peak:.0f} MiB after two 60 MB lines: the line is held more than about once"
    assert "not a JSON message" in node.stderr()


def test_a_100_mib_line_gets_a_bounded_error_and_memory_stays_bounded(start_node):
    node = start_node()
    head = b'{"src":"c1","dest":"n0","body":{"type":"send","msg_id":7,"key":"k","msg":"'
    node.write(head)
    chunk = b"x" * MIB
    for _ in range(100):
        node.write(chunk)
    node.write(b'"}}\n')
    reply = node.read_message(timeout=60)
    assert reply["body"] == {"type": "error", "code": 12, "in_reply_to": 7,
                             "text": f"request longer than the {64 << 20}-byte line limit"}
    assert node.request({"type": "send", "key": "k", "msg": "after"})["offset"] == 0
    peak = peak_memory_mib(node.proc.pid)
    # About 25 MiB of interpreter and libraries, plus at most the 64 MiB limit and one read.
    assert peak < 100, f"VmHWM {peak:.0f} MiB: the node held more of the line than its limit"
