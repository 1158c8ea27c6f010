"""Two nodes serving one file: offsets stay unique and increasing, each sees the other's data."""

from __future__ import annotations

import msgspec


def test_two_nodes_on_one_file_hand_out_unique_increasing_offsets(start_node, tmp_path):
    db = tmp_path / "log.db"
    first, second = start_node(db=db), start_node(db=db)
    got: dict[int, str] = {}
    per_node: dict[str, list[int]] = {"first": [], "second": []}
    for round_ in range(50):
        # Pipeline a few sends at each node so their transactions interleave.
        for name, node in (("first", first), ("second", second)):
            node.write(b"".join(
                msgspec.json.encode({"src": "c1", "dest": "n0", "body": {
                    "type": "send", "key": "shared", "msg": f"{name}-{round_}-{i}", "msg_id": i}}) + b"\n"
                for i in range(5)
            ))
        for name, node in (("first", first), ("second", second)):
            for _ in range(5):
                body = node.read_message()["body"]
                assert body["type"] == "send_ok", body
                assert body["offset"] not in got, "an offset was handed out twice"
                got[body["offset"]] = f"{name}-{round_}-{body['in_reply_to']}"
                per_node[name].append(body["offset"])
    for offsets in per_node.values():
        assert offsets == sorted(offsets), "one node's offsets went backwards"
    assert sorted(got) == list(range(500)), "offsets must stay dense"
    polled = first.request({"type": "poll", "offsets": {"shared": 0}})["msgs"]["shared"]
    polled += second.request({"type": "poll", "offsets": {"shared": 100}})["msgs"]["shared"]
    assert [o for o, _ in polled] == list(range(200))
    assert all(got[o] == v for o, v in polled), "each node must read what the other wrote"
