"""
The upstream's own "retry after": when the Copilot API answers 429 with a
C{Retry-After}, requests it would refuse the same way are answered 429 at
once by the proxy, with the time left, instead of hammering a limit the
upstream has announced (and that may count the refused calls too).

A hold has a scope: the whole account (the service says C{global-...} in
C{x-ratelimit-exceeded}: session and weekly limits) or one model (anything
else).  Holds are kept with C{--redis}: a hold one process learns is told
to the fleet at once and read back by every process each second.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers

from ..shared import Fleet

_log = Logger(namespace="copilot_proxy")

#: The longest hold kept: past it, the upstream's own answers decide.
MAX_HOLD = 7 * 86400.0
# How often the fleet's holds are read.
_POLL_EVERY = 1.0
ACCOUNT = "*"


def retry_after_seconds(headers: Headers, now: float) -> float | None:
    """C{Retry-After} as seconds from C{now}: a number or an HTTP date."""
    value = headers.getRawHeaders(b"retry-after", [b""])[-1].strip()
    if not value:
        return None
    if value.isdigit():
        return float(int(value[:12]))
    try:
        when = email.utils.parsedate_to_datetime(value.decode("latin-1"))
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def hold_scope(headers: Headers, model: str | None) -> str:
    """The whole account for a global limit, else the model's own."""
    exceeded = headers.getRawHeaders(b"x-ratelimit-exceeded", [b""])[-1].lower()
    if exceeded.startswith(b"global") or model is None:
        return ACCOUNT
    return f"model:{model}"


class UpstreamHolds:
    """
    The holds this process knows of: scope -> when it ends (reactor time).

    @param wall: the wall clock, for C{Retry-After} dates.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        fleet: Fleet | None = None,
        wall: Callable[[], float] | None = None,
    ) -> None:
        self._reactor = reactor
        self._fleet = fleet
        self._wall = wall or reactor.seconds
        self._until: dict[str, float] = {}
        self._loop: LoopingCall | None = None

    def start(self) -> None:
        """With a fleet: read its holds every second."""
        if self._fleet is None or self._loop is not None:
            return
        self._loop = LoopingCall(self._poll)
        self._loop.clock = self._reactor
        self._loop.start(_POLL_EVERY, now=False)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def left(self, model: str | None) -> float:
        """Seconds before a request for C{model} may go upstream (0: now)."""
        if not self._until:
            return 0.0
        now = self._reactor.seconds()
        ends = self._until.get(ACCOUNT, 0.0)
        if model is not None:
            ends = max(ends, self._until.get(f"model:{model}", 0.0))
        return max(0.0, ends - now)

    def seen(self, code: int, headers: Headers, model: str | None) -> None:
        """An upstream answer: a 429 with C{Retry-After} starts a hold."""
        if code != 429:
            return
        seconds = retry_after_seconds(headers, self._wall())
        if seconds is None or seconds <= 0:
            return
        seconds = min(seconds, MAX_HOLD)
        scope = hold_scope(headers, model)
        self._hold(scope, seconds)
        _log.warn(
            "the upstream asked to wait {seconds} s ({scope}); requests it would refuse "
            "get 429 from the proxy until then",
            seconds=math.ceil(seconds),
            scope="every model" if scope == ACCOUNT else scope,
        )
        if self._fleet is not None:
            d = self._fleet.holds(scope, seconds)
            d.addCallbacks(self._merge, _ignore)

    def _hold(self, scope: str, seconds: float) -> None:
        ends = self._reactor.seconds() + seconds
        if ends > self._until.get(scope, 0.0):
            self._until[scope] = ends
        self._forget_past()

    def _forget_past(self) -> None:
        now = self._reactor.seconds()
        for scope in [s for s, ends in self._until.items() if ends <= now]:
            del self._until[scope]

    def _merge(self, fleet: dict[str, float]) -> None:
        for scope, seconds in list(fleet.items())[:256]:
            self._hold(scope, min(seconds, MAX_HOLD))
        self._forget_past()

    def _poll(self) -> None:
        assert self._fleet is not None
        self._fleet.holds().addCallbacks(self._merge, _ignore)


def _ignore(failure: Failure) -> None:
    """Redis unavailable: this process's own holds still apply."""
