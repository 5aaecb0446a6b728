"""
The last requests of this process that went wrong, for the status page: a
bounded ring, filled where requests end and where they are refused.

An entry holds what an operator needs to see that something failed and for
whom (the time, the key's name, the model, the route group, the status, how
it ended and why), never a token, a key or a body.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from twisted.web.server import Request

from ..metrics import route_group
from ..web import client_label
from ..wire import Outcome
from ._record import NO_MODEL

#: How many entries the ring keeps; older ones fall out.
RECENT_ERRORS = 50

#: Why an exchange that answered without an error code of the proxy's own
#: still counts as one that went wrong.
_CAUSES = {
    Outcome.CLIENT_GONE: "the client left before the answer ended",
    Outcome.UPSTREAM_ERROR: "the upstream answer was cut or unreadable",
    Outcome.TIMEOUT: "the upstream went silent past the idle timeout",
    Outcome.SHUTDOWN: "cut when the shutdown grace ran out",
}

#: Why the access gate refuses, by status (the client's answer says more).
_REFUSALS = {
    401: "no valid client key",
    403: "this key may not be served here",
    429: "over a limit of the proxy: rate, streams, queue or budget",
}


@dataclass(frozen=True)
class RecentError:
    """
    One request that went wrong.

    @ivar at: when it ended, in POSIX seconds.
    @ivar key: who it is counted as (a key's name, C{key-<digest>} or
        C{addr:<ip>}, as the usage ledger names it).
    @ivar model: the model asked for, or L{NO_MODEL}.
    @ivar route: its route group (C{chat_completions}, C{messages}...).
    @ivar status: the status answered, or L{None} if none was sent.
    @ivar outcome: how it ended (L{Outcome}'s words).
    @ivar cause: the proxy's error code, or a short reason.
    """

    at: float
    key: str
    model: str
    route: str
    status: int | None
    outcome: str
    cause: str

    def document(self) -> dict[str, object]:
        """The entry as JSON-ready values."""
        return {
            "at": round(self.at, 3),
            "key": self.key,
            "model": self.model,
            "route": self.route,
            "status": self.status,
            "outcome": self.outcome,
            "cause": self.cause,
        }


class RecentErrors:
    """
    The last L{RECENT_ERRORS} requests that ended with a status of 400 or
    more, or did not end complete, newest last.  Each process has its own.
    """

    def __init__(self, clock: Callable[[], float], size: int = RECENT_ERRORS) -> None:
        """
        @param clock: the time now, in POSIX seconds.
        @param size: how many entries to keep.
        """
        self._clock = clock
        self._entries: deque[RecentError] = deque(maxlen=size)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[RecentError]:
        return iter(self._entries)

    def ended(
        self, request: Request, outcome: Outcome, model: str | None, cause: str | None = None
    ) -> None:
        """
        Note an ended exchange if it went wrong; one that ended complete
        with a status below 400 (or from the cache) is not kept.

        @param cause: the error code of the proxy's own answer, if it made one.
        """
        # A request cut before its head was sent has no status yet.
        status: int | None = request.code if request.startedWriting else None
        ok = outcome in (Outcome.COMPLETE, Outcome.CACHED)
        if ok and status is not None and status < 400:
            return
        if cause is None:
            cause = _CAUSES.get(outcome) or (
                outcome.value if status is None else f"answered {status}"
            )
        self._add(client_label(request), model, route_group(request.uri), status, outcome, cause)

    def refused(self, request: Request, status: int, code: str | None = None) -> None:
        """Note a request the access gate refused (with its error code, if given)."""
        cause = code or _REFUSALS.get(status, "refused by the proxy")
        self._add(
            client_label(request), None, route_group(request.uri), status, Outcome.REFUSED, cause
        )

    def refused_early(self, status: int, who: str) -> None:
        """Note a request head the HTTP channel refused before its body was read."""
        self._add(who, None, "-", status, Outcome.REFUSED, "refused before its body was read")

    def documents(self, key: str | None = None) -> list[dict[str, object]]:
        """
        The entries as JSON-ready values, newest first.

        @param key: only the entries counted as this key, or L{None} for all.
        """
        return [e.document() for e in reversed(self._entries) if key is None or e.key == key]

    def _add(
        self,
        key: str,
        model: str | None,
        route: str,
        status: int | None,
        outcome: Outcome,
        cause: str,
    ) -> None:
        entry = RecentError(
            self._clock(), key, model or NO_MODEL, route, status, outcome.value, cause
        )
        self._entries.append(entry)
