"""
The exchanges that have not ended yet, so that a stopping service can wait
for them and then abort the rest.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.defer import Deferred


class Abortable(Protocol):
    """Anything in flight that can be cut at once."""

    def abort(self) -> None:
        """Cut it now, upstream and client side."""


class InFlight:
    """A set of exchanges in flight, with a wait for it to empty."""

    def __init__(self) -> None:
        self._members: set[Abortable] = set()
        self._waiters: list[Deferred[None]] = []

    def __len__(self) -> int:
        return len(self._members)

    def add(self, member: Abortable) -> None:
        self._members.add(member)

    def discard(self, member: Abortable) -> None:
        self._members.discard(member)
        if not self._members:
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                d.callback(None)

    def drained(self) -> Deferred[None]:
        """Fires when nothing is in flight (at once if nothing is)."""
        d: Deferred[None] = Deferred(self._waiters.remove)
        if self._members:
            self._waiters.append(d)
        else:
            d.callback(None)
        return d

    def abort_all(self) -> None:
        """Cut every exchange still in flight, upstream and client side."""
        for member in list(self._members):
            member.abort()


class Relay(Abortable, Protocol):
    """What serves one admitted request: started once, abortable."""

    def start(self) -> None:
        """Begin serving the request."""
