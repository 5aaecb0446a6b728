"""
Caps on concurrent upstream requests: globally and per client.

Pure bookkeeping: a request acquires a slot before its relay starts and
releases it however the relay ends.  A client's cap is the proxy's per-client
cap (C{--max-streams-per-key}) unless its key has one of its own
(C{streams=} in the keys file), which the caller passes with each request.
Waiters are kept in arrival order; when a slot frees, the first waiter whose
client is under its own cap is served, so one client at its cap does not
hold up the others.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable


class Waiter:
    """A request waiting for a slot; L{StreamSlots.cancel} takes it back."""

    __slots__ = ("cap", "key", "proceed")

    def __init__(self, key: str, proceed: Callable[[], None], cap: int | None) -> None:
        self.key = key
        self.proceed = proceed
        self.cap = cap


class StreamSlots:
    """
    Counts requests in flight against C{total} and C{per_key} caps
    (L{None}: no cap).  Where a method takes a C{cap}, it is the key's own
    cap, replacing C{per_key} for that request; L{None} means C{per_key}.
    """

    def __init__(self, total: int | None, per_key: int | None) -> None:
        self.total = total
        self.per_key = per_key
        self.in_flight = 0
        self._by_key: Counter[str] = Counter()
        self._waiters: list[Waiter] = []

    def __len__(self) -> int:
        """How many requests are waiting for a slot."""
        return len(self._waiters)

    def key_full(self, key: str, cap: int | None = None) -> bool:
        """Whether C{key} is at its own cap (rather than the proxy at its total)."""
        limit = cap if cap is not None else self.per_key
        return limit is not None and self._by_key[key] >= limit

    def _room(self, key: str, cap: int | None) -> bool:
        if self.total is not None and self.in_flight >= self.total:
            return False
        return not self.key_full(key, cap)

    def try_acquire(self, key: str, cap: int | None = None) -> bool:
        """Take a slot for C{key} if there is room and nobody waits before it."""
        if any(w.key == key for w in self._waiters) or not self._room(key, cap):
            return False
        self._take(key)
        return True

    def _take(self, key: str) -> None:
        self.in_flight += 1
        self._by_key[key] += 1

    def wait(self, key: str, proceed: Callable[[], None], cap: int | None = None) -> Waiter:
        """Queue for a slot: C{proceed} is called once it is taken for us."""
        waiter = Waiter(key, proceed, cap)
        self._waiters.append(waiter)
        return waiter

    def cancel(self, waiter: Waiter) -> None:
        """Stop waiting (the client left)."""
        if waiter in self._waiters:
            self._waiters.remove(waiter)

    def release(self, key: str) -> None:
        """A request of C{key} ended: hand its slot to the waiters."""
        self.in_flight -= 1
        self._by_key[key] -= 1
        if self._by_key[key] <= 0:
            del self._by_key[key]
        served = []
        for waiter in self._waiters:
            if self._room(waiter.key, waiter.cap):
                self._take(waiter.key)
                served.append(waiter)
            if self.total is not None and self.in_flight >= self.total:
                break
        for waiter in served:
            self._waiters.remove(waiter)
        for waiter in served:
            waiter.proceed()
