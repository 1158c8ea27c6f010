"""Operations and the history they form: what each client invoked and how it completed,
stamped with the time since the test began, recorded in order and stored as JSON lines."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

#: The four op types, as in Jepsen: an invocation, then exactly one completion.
INVOKE, OK, FAIL, INFO = "invoke", "ok", "fail", "info"


class Op(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One history entry.

    `value` depends on `f`: a send is {key, msg} (+ offset when ok); a poll is {offsets}
    asked (+ msgs read and the commit sent after it); an assign is {keys, seek_to_beginning}
    (+ committed, as listed by the node, and the offsets the client starts from); a crash
    has no value. `time` is in nanoseconds since the test began.
    """

    index: int = -1
    time: int = 0
    process: int | str  # a client's number, or "nemesis"
    client: str | None = None
    node: str | None = None  # the node the client is bound to
    type: str
    f: str
    value: Any = None
    error: str | None = None


class History:
    """The ops of one run, appended as clients invoke and complete them."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.counts: Counter[tuple[str, str]] = Counter()  # (f, type) of completions
        self._origin = time.monotonic_ns()

    def now(self) -> int:
        """Nanoseconds since the history began."""
        return time.monotonic_ns() - self._origin

    def seconds(self) -> float:
        """Seconds since the history began (the runner's clock for phases and pacing)."""
        return self.now() / 1e9

    def invoke(self, process: int, client: str, f: str, value: Any, node: str | None = None) -> Op:
        op = Op(index=len(self.ops), time=self.now(), process=process, client=client, node=node, type=INVOKE, f=f,
                value=value)
        self.ops.append(op)
        return op

    def nemesis(self, f: str, value: Any) -> Op:
        """Half a step of a fault (a partition, a restart), recorded as Jepsen records the
        nemesis': an :info op for what it is asked, then another for what was done."""
        op = Op(index=len(self.ops), time=self.now(), process="nemesis", type=INFO, f=f, value=value)
        self.ops.append(op)
        return op

    def complete(self, invocation: Op, type: str, value: Any, error: str | None = None) -> Op:
        op = Op(
            index=len(self.ops), time=self.now(), process=invocation.process, client=invocation.client,
            node=invocation.node, type=type, f=invocation.f, value=value, error=error,
        )
        self.ops.append(op)
        self.counts[op.f, op.type] += 1
        return op


def key_order(key: str) -> tuple:
    """Sort key for kafka keys: integer keys ("0", "1", ...) numerically, then any other key
    as text. `isascii` matters: "²".isdigit() is true, yet int("²") raises."""
    return (0, int(key), "") if key.isascii() and key.isdigit() else (1, 0, key)


def is_client_op(op: Op) -> bool:
    """A client's operation, as opposed to the nemesis' (whose process is a name)."""
    return type(op.process) is int


def client_ops(ops: Iterable[Op]) -> list[Op]:
    return [op for op in ops if type(op.process) is int]


def pairs(ops: Iterable[Op]) -> Iterator[tuple[Op | None, Op]]:
    """Each client completion with its invocation (None when the history lacks it), in history
    order; the nemesis' operations are left out."""
    pending: dict[int | str, Op] = {}
    for op in ops:
        if type(op.process) is not int:
            continue
        if op.type == INVOKE:
            pending[op.process] = op
        else:
            yield pending.pop(op.process, None), op


def write_jsonl(ops: Sequence[Op], path: Path) -> None:
    encoder = msgspec.json.Encoder()
    with open(path, "wb") as out:
        for start in range(0, len(ops), 4096):
            out.write(encoder.encode_lines(ops[start:start + 4096]))


class HistoryError(Exception):
    """A stored history that cannot be read, and where."""

    def __init__(self, path: Path, line: int | None, problem: str) -> None:
        super().__init__(f"{path}{f':{line}' if line else ''}: {problem}")


def read_jsonl(path: Path) -> list[Op]:
    decoder = msgspec.json.Decoder(Op)
    ops = []
    with open(path, "rb") as lines:
        for n, line in enumerate(lines, 1):
            if line.strip():
                try:
                    ops.append(decoder.decode(line))
                except msgspec.DecodeError as error:
                    raise HistoryError(path, n, f"not an operation of this runner's history: {error}") from None
    return ops
