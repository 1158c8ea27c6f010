"""What one replica knows of its partition's state in lin-kv, and its one call there in flight: states
taken newest version first; a compare-and-set whose answer never came read about until lin-kv moves on."""

from __future__ import annotations

from enum import Enum

from kafka_node.replication.events import KvAnswered, KvCall, KvExpired
from kafka_node.wire.kv import KEY_DOES_NOT_EXIST
from kafka_node.wire.replica import PartitionState


class Heard(Enum):
    """What lin-kv's answer to the call in flight comes to."""

    NOTHING = "nothing"  # not the call in flight, or a call sent again: nothing to act on yet
    STATE = "state"  # a read's answer: act on the newest state known
    APPLIED = "applied"  # the compare-and-set applied, and its state is the newest known
    UNKNOWN = "unknown"  # the compare-and-set's outcome is unknown: a read is asked for


class LinKv:
    """The newest state seen (by version), whether a read found none, the call in flight, and
    the compare-and-set of unknown outcome: it blocks every other until a read shows lin-kv past
    the state it changes from (it applied, or never can now); while lin-kv still holds that
    state, the same request is sent again, so that it can never apply later unseen."""

    def __init__(self, pid: int, now: float) -> None:
        self.pid = pid
        self.known: PartitionState | None = None
        self.missing = False  # a read found no state: nobody created the partition's yet
        self.call: KvCall | None = None
        self.uncertain: KvCall | None = None
        self.expiries = 0  # calls in a row that went unanswered
        self.reread_at = now

    @property
    def idle(self) -> bool:
        return self._free and self.uncertain is None

    @property
    def calling(self) -> bool:
        """Whether a call is in flight that something waits for (not an optional read)."""
        return not self._free

    @property
    def _free(self) -> bool:
        """No call in flight but an optional read, which any other call replaces."""
        return self.call is None or self.call.optional

    def read(self, out: list[KvCall], optional: bool = False) -> None:
        if self._free and not (optional and self.call is not None):
            self.call = KvCall(self.pid, optional=optional)
            out.append(self.call)

    def cas(self, to: PartitionState, out: list[KvCall]) -> None:
        """Ask to change the newest state known into `to` (if no call is in flight)."""
        if self._free:
            self.call = KvCall(self.pid, self.known, to)
            out.append(self.call)

    def read_if_due(self, now: float, every: float, out: list[KvCall], optional: bool = False) -> None:
        if self.call is None and now >= self.reread_at:
            self.reread_at = now + every
            self.read(out, optional)

    def learn(self, state: PartitionState) -> bool:
        """Take `state` if it is newer than every one seen; whether it was."""
        if self.known is not None and state.version <= self.known.version:
            return False
        self.known = state
        self.missing = False
        self.resolve()
        return True

    def resolve(self) -> None:
        """Forget the compare-and-set of unknown outcome once lin-kv is known to have moved past
        the state it changes."""
        uncertain, known = self.uncertain, self.known
        if uncertain is not None and uncertain.to is not None and known is not None and known.version >= uncertain.to.version:
            self.uncertain = None

    def answered(self, event: KvAnswered, retry: float, out: list[KvCall]) -> Heard:
        call = event.call
        if call is not self.call:
            return Heard.NOTHING
        self.call = None
        self.expiries = 0
        if not call.is_cas:
            if event.state is not None:
                self.learn(event.state)
            elif event.error == KEY_DOES_NOT_EXIST and self.known is None:
                self.missing = True
            else:
                self.reread_at = event.now + retry
            if self.uncertain is not None and self._unapplied(self.uncertain, event):
                self.call = KvCall(self.pid, self.uncertain.from_, self.uncertain.to)  # the same, once more
                out.append(self.call)
                return Heard.NOTHING
            return Heard.STATE
        if event.error is None:
            assert call.to is not None
            return Heard.APPLIED if self.learn(call.to) else Heard.STATE
        # Refused (22: lin-kv holds another state than `from`), or any other error: the answer
        # may be a copy of this request's (sent twice by the network) arriving after the one
        # that applied, so whether it applied is known only once a read shows lin-kv past `from`.
        self.uncertain = call
        self.resolve()
        self.read(out)
        return Heard.UNKNOWN

    def expired(self, event: KvExpired, out: list[KvCall]) -> bool:
        """The call in flight went unanswered: its outcome is unknown; read. Whether it was the
        call in flight."""
        call = event.call
        if call is not self.call:
            return False
        self.call = None
        if call.optional:
            return True  # nothing waited for it: the next is read when due
        self.expiries += 1
        if call.is_cas:
            self.uncertain = call
            self.resolve()
        self.read(out)
        return True

    @staticmethod
    def _unapplied(call: KvCall, read: KvAnswered) -> bool:
        """Whether a read shows lin-kv still holds the state `call` changes from (so the call
        may still apply, or may have been lost)."""
        if call.from_ is None:
            return read.state is None and read.error == KEY_DOES_NOT_EXIST
        return read.state is not None and read.state.version == call.from_.version
