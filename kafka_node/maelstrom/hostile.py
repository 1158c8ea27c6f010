"""Hostile input for --hostile-every: invalid lines of many kinds, chosen at random and written
to the node between the workload's requests, and the tally of the node's replies to them."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from kafka_node.maelstrom.network import NODE_ID, InvalidOutput

#: The sender of every hostile request that can be answered; no workload client has this id.
HOSTILE_CLIENT = "h1"
#: The anomaly for a reply to HOSTILE_CLIENT that is not an error: every hostile request is invalid.
HOSTILE_ACCEPTED = "hostile-accepted"
#: Keys the workload never uses (its keys are "0", "1", ...): a hostile request that writes and
#: is wrongly accepted cannot touch a key the checker judges. Polls may name workload keys.
FOREIGN_KEYS = ("h", "hostile", "h-7")
#: Nesting depth of the deeply nested lines.
DEEP = 10_000
#: Characters of a line or reply kept in hostile.jsonl and in anomaly cases.
EXCERPT = 200

_encoder = msgspec.json.Encoder()


def _line(src: Any, body: Any, **envelope: Any) -> bytes:
    """A message from `src`; a `src` of ... leaves the field out."""
    message = {"src": src, "dest": NODE_ID, **envelope, "body": body}
    if src is ...:
        del message["src"]
    return _encoder.encode(message)


def _raw(text: str | bytes) -> bytes:
    return text.encode() if isinstance(text, str) else text


def _nested(open_: str, close: str, inner: str = "") -> str:
    return open_ * DEEP + inner + close * DEEP


def _send(msg_id: int, key: Any = "h", msg: Any = 1) -> dict[str, Any]:
    return {"type": "send", "key": key, "msg": msg, "msg_id": msg_id}


class HostileLines:
    """Chooses the next hostile line; every request among them fails validation, so a correct
    node answers each with an error, or (when nobody can be answered) with nothing."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._msg_ids = itertools.count(1)
        self.kinds: dict[str, Callable[[int], bytes]] = {
            "not-json": self.not_json, "invalid-utf8": self.invalid_utf8, "lone-surrogate": self.lone_surrogate,
            "truncated-json": self.truncated_json, "json-array": self.json_array, "json-scalar": self.json_scalar,
            "deep-nesting": self.deep_nesting, "blank": self.blank, "unknown-type": self.unknown_type,
            "missing-field": self.missing_field, "mistyped-field": self.mistyped_field,
            "bad-offset": self.bad_offset, "bad-msg-id": self.bad_msg_id, "no-sender": self.no_sender,
        }

    def next_line(self) -> tuple[str, bytes, int]:
        """(kind, the line with its newline, its number n: also the msg_id of a request that has one)."""
        kind = self.rng.choice(list(self.kinds))
        msg_id = next(self._msg_ids)
        line = self.kinds[kind](msg_id).replace(b"\n", b" ")
        return kind, line + b"\n", msg_id

    def _pick(self, options: list[Any]) -> Any:
        return options[self.rng.randrange(len(options))]

    def not_json(self, msg_id: int) -> bytes:
        printable = "".join(chr(self.rng.randrange(32, 127)) for _ in range(self.rng.randrange(1, 200)))
        return _raw(self._pick([
            "hello", "{", "}", "{src: h1}", "{'src': 'h1', 'dest': 'n0'}", "NaN", "\x00\x01\x02\x1b[2J",
            "\ufeff{}", f'{{"src":"{HOSTILE_CLIENT}","dest":"n0","body":{{"type":"send",,}}}}', printable,
        ]))

    def invalid_utf8(self, msg_id: int) -> bytes:
        head = f'{{"src":"{HOSTILE_CLIENT}","dest":"{NODE_ID}","body":{{"msg_id":{msg_id},'.encode()
        return self._pick([
            head + b'"type":"send","key":"\xff\xfe","msg":1}}',
            head + b'"type":"send","key":"h","msg":"\xc3\x28"}}',
            head + b'"type":"se\x80nd","key":"h","msg":1}}',
            head + b'"type":"poll","offsets":{"\xed\xa0\x80":0}}}',
            bytes(self.rng.randrange(0x80, 0x100) for _ in range(self.rng.randrange(1, 64))),
        ])

    def lone_surrogate(self, msg_id: int) -> bytes:
        head = f'{{"src":"{HOSTILE_CLIENT}","dest":"{NODE_ID}","body":{{"msg_id":{msg_id},'
        return _raw(self._pick([
            head + '"type":"send","key":"\\ud800","msg":1}}',
            head + '"type":"send","key":"h","msg":"\\udfff"}}',
            head + '"type":"commit_offsets","offsets":{"\\udc00":1}}}',
        ]))

    def truncated_json(self, msg_id: int) -> bytes:
        whole = _line(HOSTILE_CLIENT, self._pick([
            _send(msg_id), {"type": "commit_offsets", "offsets": {"h": 3}, "msg_id": msg_id},
            {"type": "poll", "offsets": {"0": 0, "1": 0}, "msg_id": msg_id},
        ]))
        return whole[:self.rng.randrange(1, len(whole))]  # a proper prefix of an object is never JSON

    def json_array(self, msg_id: int) -> bytes:
        request = _line(HOSTILE_CLIENT, _send(msg_id))
        return self._pick([b"[" + request + b"]", b"[]", b"[1,2,3]", b"[" + request + b"," + request + b"]"])

    def json_scalar(self, msg_id: int) -> bytes:
        return _raw(self._pick(["0", "-1", '"send"', "null", "true", "1e999", '"' + "x" * 1000 + '"']))

    def deep_nesting(self, msg_id: int) -> bytes:
        return _raw(self._pick([
            _nested("[", "]"),
            _nested('{"a":', "}", "1"),
            f'{{"src":"{HOSTILE_CLIENT}","dest":"{NODE_ID}","body":' + _nested("[", "]") + "}",
            f'{{"src":"{HOSTILE_CLIENT}","dest":"{NODE_ID}","body":{{"type":"poll","msg_id":{msg_id},'
            f'"offsets":{{"0":' + _nested("[", "]") + "}}}",
            f'{{"src":"{HOSTILE_CLIENT}","dest":"{NODE_ID}","body":{{"type":"list_committed_offsets",'
            f'"msg_id":{msg_id},"keys":' + _nested("[", "]") + "}}",
        ]))

    def blank(self, msg_id: int) -> bytes:
        return _raw(self._pick(["", " ", "\t", "\r", "   \t  "]))

    def unknown_type(self, msg_id: int) -> bytes:
        kind = self._pick(["echo", "topology", "generate", "broadcast", "read", "txn", "send_ok", "poll_ok",
                           "commit_offsets_ok", "error", "init_ok", "SEND", "Send", " send", "send ", "sned", "",
                           "send\u0000", "fetch_committed_offsets"])
        return _line(HOSTILE_CLIENT, {"type": kind, "key": "h", "msg": 1, "offsets": {"h": 0}, "msg_id": msg_id})

    def missing_field(self, msg_id: int) -> bytes:
        request = self._pick([
            {"type": "send", "msg": 1}, {"type": "send", "key": "h"},
            {"type": "poll"}, {"type": "commit_offsets"}, {"type": "list_committed_offsets"},
            {"key": "h", "msg": 1}, {"type": "init", "node_id": NODE_ID},
        ])
        if self.rng.random() < 0.2:
            return _encoder.encode({"src": HOSTILE_CLIENT, "body": _send(msg_id)})  # no dest
        if self.rng.random() < 0.1:
            return _encoder.encode({"src": HOSTILE_CLIENT, "dest": NODE_ID})  # no body
        return _line(HOSTILE_CLIENT, {**request, "msg_id": msg_id})

    def mistyped_field(self, msg_id: int) -> bytes:
        body = self._pick([
            _send(msg_id, key=987654321987), _send(msg_id, key=None), _send(msg_id, key=["h"]),
            _send(msg_id, key={"k": "h"}), _send(msg_id, key=True),
            {"type": "poll", "offsets": [], "msg_id": msg_id}, {"type": "poll", "offsets": "h", "msg_id": msg_id},
            {"type": "poll", "offsets": None, "msg_id": msg_id},
            {"type": "poll", "offsets": {"0": "0"}, "msg_id": msg_id},
            {"type": "commit_offsets", "offsets": {"h": "1"}, "msg_id": msg_id},
            {"type": "commit_offsets", "offsets": [["h", 1]], "msg_id": msg_id},
            {"type": "list_committed_offsets", "keys": "h", "msg_id": msg_id},
            {"type": "list_committed_offsets", "keys": [1, 2], "msg_id": msg_id},
            {"type": "list_committed_offsets", "keys": [None], "msg_id": msg_id},
            {"type": 5, "msg_id": msg_id}, {"type": None, "msg_id": msg_id}, {"type": ["send"], "msg_id": msg_id},
            "send", [], 5,
        ])
        return _line(HOSTILE_CLIENT, body)

    def bad_offset(self, msg_id: int) -> bytes:
        offset = self._pick([-1, -(2**63), 2**64, 10**30, 1.5, 1e30, 0.0, True])
        if self.rng.random() < 0.5:
            body = {"type": "poll", "offsets": {self._pick(["0", "1", "h"]): offset}}
        else:
            body = {"type": "commit_offsets", "offsets": {self._pick(list(FOREIGN_KEYS)): offset}}
        return _line(HOSTILE_CLIENT, {**body, "msg_id": msg_id})

    def bad_msg_id(self, msg_id: int) -> bytes:
        bad = self._pick([str(msg_id), float(msg_id) + 0.5, float(msg_id), [msg_id], {"id": msg_id}, True])
        return _line(HOSTILE_CLIENT, {**_send(msg_id), "msg_id": bad})

    def no_sender(self, msg_id: int) -> bytes:
        return _line(self._pick([..., None]), {"type": "poll", "offsets": {"0": -1}, "msg_id": msg_id})


class HostileReply(msgspec.Struct):
    type: str
    code: Any = None
    in_reply_to: Any = None


class HostileTally:
    """The hostile lines written and the node's replies to HOSTILE_CLIENT, by error code; a
    reply that is not an error accepted an invalid request and becomes a hostile-accepted case."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.sent_by_kind: Counter[str] = Counter()
        self.replies_by_code: Counter[str] = Counter()
        self.accepted: list[dict[str, Any]] = []  # hostile-accepted cases
        self.lines: list[dict[str, Any]] = []  # one record per line written, for hostile.jsonl
        self._by_msg_id: dict[int, dict[str, Any]] = {}

    def sent(self, kind: str, line: bytes, msg_id: int, seconds: float) -> None:
        self.sent_by_kind[kind] += 1
        entry = {"n": msg_id, "time": round(seconds, 6), "kind": kind, "bytes": len(line),
                 "line": _excerpt(line.rstrip(b"\n"))}
        self.lines.append(entry)
        self._by_msg_id[msg_id] = entry

    def received(self, body: msgspec.Raw, seconds: float) -> None:
        """Count one reply addressed to HOSTILE_CLIENT; InvalidOutput if it has no type."""
        try:
            reply = msgspec.json.decode(body, type=HostileReply)
        except msgspec.DecodeError as error:
            raise InvalidOutput(f"{error} in a reply to {HOSTILE_CLIENT}: {_excerpt(body)!r}") from None
        asked = self._by_msg_id.get(reply.in_reply_to) if type(reply.in_reply_to) is int else None
        if reply.type == "error":
            code = str(reply.code) if type(reply.code) is int else "no integer code"
            self.replies_by_code[code] += 1
            if asked is not None:
                asked["reply"] = code
            return
        self.replies_by_code[reply.type] += 1
        if asked is not None:
            asked["reply"] = reply.type
        self.accepted.append({"time": round(seconds, 6), "reply": _excerpt(body),
                              "kind": asked["kind"] if asked else None, "request": asked["line"] if asked else None})

    def described(self) -> dict[str, Any]:
        """What results.json records."""
        return {
            "every": self.every, "client": HOSTILE_CLIENT, "sent": sum(self.sent_by_kind.values()),
            "sent_by_kind": dict(sorted(self.sent_by_kind.items())),
            "replies": sum(self.replies_by_code.values()),
            "replies_by_code": dict(sorted(self.replies_by_code.items())), "accepted": len(self.accepted),
        }


def write_lines(tally: HostileTally, path: Path) -> None:
    """hostile.jsonl: each line written (excerpt, kind, size) and what the node replied to it."""
    path.write_bytes(_encoder.encode_lines(tally.lines))


def _excerpt(data: bytes) -> str:
    text = bytes(data).decode("utf-8", "backslashreplace")
    return text if len(text) <= EXCERPT else f"{text[:EXCERPT]}... ({len(data)} bytes)"
