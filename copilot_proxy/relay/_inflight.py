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


class InFlightMember(Abortable, Protocol):
    """An exchange in flight: abortable, and described for the status page."""

    def describe(self, now: float) -> dict[str, object]:
        """
        What the status page shows of it, as JSON-ready values: at least
        C{key} (who it is counted as) and C{age_s}; never a token, a key
        or a body.

        @param now: the time now, on the reactor's clock.
        """


class InFlight:
    """A set of exchanges in flight, with a wait for it to empty."""

    def __init__(self) -> None:
        self._members: set[InFlightMember] = set()
        self._waiters: list[Deferred[None]] = []

    def __len__(self) -> int:
        return len(self._members)

    def add(self, member: InFlightMember) -> None:
        self._members.add(member)

    def describe(self, now: float, key: str | None = None) -> list[dict[str, object]]:
        """
        The exchanges in flight as L{InFlightMember.describe} gives them,
        oldest first.

        @param key: only those counted as this key, or L{None} for all.
        """
        found = [member.describe(now) for member in self._members]
        if key is not None:
            found = [d for d in found if d.get("key") == key]
        found.sort(key=lambda d: -_age(d))
        return found

    def discard(self, member: InFlightMember) -> None:
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


def _age(description: dict[str, object]) -> float:
    age = description.get("age_s")
    return float(age) if isinstance(age, (int, float)) else 0.0


class Relay(Abortable, Protocol):
    """What serves one admitted request: started once, abortable."""

    def start(self) -> None:
        """Begin serving the request."""
