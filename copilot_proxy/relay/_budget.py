"""
How much request-body memory all exchanges may hold at once.

An exchange keeps the body it sends upstream until it ends (a 401 is
replayed with it), and a socket's write buffer may hold another copy while
it drains: a large body costs about twice its size for as long as its
exchange runs.  Without a bound, a handful of legal 15 MB requests pushes
the shipped systemd unit (C{MemoryMax=512M}) into its limit; with one, the
request past it gets a 503 that SDKs retry.
"""

from __future__ import annotations

# Bodies smaller than this are not counted: they are bounded by the number of
# connections, and refusing them would turn a few large uploads into an
# outage for everyone.
SMALL_BODY = 1024 * 1024

# What one large body costs while its exchange runs, in multiples of its size.
COPIES = 2

#: The default bound: with C{--max-body 16M}, eight such bodies at once.
DEFAULT_LIMIT = 256 * 1024 * 1024


class BodyBudget:
    """
    The bytes of large request bodies held at once, against a limit.

    @param limit: the most bytes held at once, or L{None} for no bound.
    """

    def __init__(self, limit: int | None = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> int | None:
        """
        Hold a body of C{size} bytes: the amount to L{give_back} when the
        exchange ends (0 for a small body), or L{None} if it does not fit now.
        """
        if size < SMALL_BODY:
            return 0
        cost = size * COPIES
        if self.limit is not None and self.held + cost > self.limit and self.held > 0:
            return None
        self.held += cost
        return cost

    def give_back(self, cost: int) -> None:
        self.held -= cost
