"""What a replicated node's replies wait for beyond their own COMMIT: every in-sync replica holding
that commit (or the news that none ever will), and the requests waiting for their keys' leader."""

from __future__ import annotations

from kafka_node import errors, protocol
from kafka_node.outbox import Held

#: Seconds a request may wait for its keys' partition to have a leader able to take it (about
#: an election's length) before it is refused with a definite error.
LEADER_WAIT = 1.0


class ReplyGate:
    """Replies held until the in-sync set holds their commit, the commits it never came to
    hold (kept while a part sent on may still complete a reply waiting for one), and the
    requests waiting for a leader, each with its deadline."""

    def __init__(self, forward_timeout: float) -> None:
        self.forward_timeout = forward_timeout
        self._held: list[Held] = []
        self._failed: dict[int, float] = {}  # commit -> when it was given up on
        self._waiting: list[protocol.Envelope] = []
        self._deadlines: dict[int, tuple[protocol.Envelope, float]] = {}  # id -> (the request, its deadline)

    def hold(self, held: list[Held]) -> list[Held]:
        """Keep the replies that wait for a commit; the others, which may leave now."""
        self._held += [entry for entry in held if entry.commit]
        return [entry for entry in held if not entry.commit]

    def release(self, released: int, failed: list[int], now: float) -> list[Held]:
        """The replies whose commit every in-sync replica now holds (the newest such is
        `released`), and in place of those whose commit was given up on, an unknown outcome."""
        for commit in failed:
            self._failed[commit] = now
        for commit in [c for c, since in self._failed.items() if now - since > self.forward_timeout + 1]:
            del self._failed[commit]  # no part sent on can still complete a reply waiting for it
        out, kept = [], []
        for entry in self._held:
            if entry.commit in self._failed:
                out.append(Held(errors.not_replicated(entry.reply), entry.commit))
            elif entry.commit <= released:
                out.append(entry)
            else:
                kept.append(entry)
        self._held = kept
        return out

    def wait(self, request: protocol.Envelope, now: float) -> bool:
        """Whether a request its keys' leader cannot take now (none is known, or it is being
        elected, or is starting its epoch) waits for one, to be tried again at the next tick,
        rather than failing: up to LEADER_WAIT seconds from when it first came."""
        deadline = self._deadlines.setdefault(id(request), (request, now + LEADER_WAIT))[1]
        if deadline <= now:
            del self._deadlines[id(request)]
            return False
        self._waiting.append(request)
        return True

    def take_waiting(self) -> list[protocol.Envelope]:
        """The requests waiting for a leader, to try again now (those still refused wait again)."""
        waiting, self._waiting = self._waiting, []
        return waiting

    def tried(self, requests: list[protocol.Envelope]) -> None:
        """Forget the deadlines of the requests tried again that no longer wait."""
        still = {id(request) for request in self._waiting}
        for request in requests:
            if id(request) not in still:
                self._deadlines.pop(id(request), None)
