"""Requests whose partition has no leader here able to take them now (none known, elected, starting,
too few in sync, lease lapsed): each waits, tried again at every tick, before a definite error."""

from __future__ import annotations

from typing import Generic, TypeVar

Request = TypeVar("Request")


class WaitingRoom(Generic[Request]):
    """The requests waiting, each with its deadline: a client's waits `leader_wait` from when it
    first came; one another node forwarded waits `peer_wait`, so that its answer reaches that
    node before it gives up."""

    def __init__(self, leader_wait: float, peer_wait: float) -> None:
        self.leader_wait = leader_wait
        self.peer_wait = peer_wait
        self._waiting: list[Request] = []
        self._deadlines: dict[int, tuple[Request, float]] = {}  # id -> (the request, its deadline)

    def wait(self, request: Request, now: float, forwarded: bool = False) -> bool:
        """Whether `request` waits, to be tried again at the next tick (False: its time is up)."""
        wait = self.peer_wait if forwarded else self.leader_wait
        deadline = self._deadlines.setdefault(id(request), (request, now + wait))[1]
        if deadline <= now:
            del self._deadlines[id(request)]
            return False
        self._waiting.append(request)
        return True

    def take(self) -> list[Request]:
        """The requests waiting, to try again now (those still refused wait again)."""
        waiting, self._waiting = self._waiting, []
        return waiting

    def tried(self, requests: list[Request]) -> None:
        """Forget the deadlines of the requests tried again that no longer wait."""
        still = {id(request) for request in self._waiting}
        for request in requests:
            if id(request) not in still:
                self._deadlines.pop(id(request), None)

    def __len__(self) -> int:
        return len(self._waiting)
