"""
The timers of one exchange: the idle watchdog and the event-stream
keep-alives, on one timer per exchange and nothing on the per-chunk path.

The watchdog looks at how many bytes have reached the client a few times per
idle period, so a stream is declared idle between 1 and 1.25 idle periods
after its last byte.  Keep-alives are the watchdog's own bytes: they do not
count as upstream progress.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

# The watchdog looks this many times per idle (or keep-alive) period.
WATCH_SLICES = 4

# Written to an idle event stream; a comment line, which SSE parsers skip.
KEEPALIVE = b": keep-alive\n\n"


class Watchdog:
    """
    Calls C{on_idle} once the exchange has made no progress for
    C{idle_timeout} seconds, and sends keep-alives once asked to.

    @param progress: how many bytes have been written to the client so far.
    @param on_idle: called once, when the exchange is idle; the watchdog
        stops looking after that.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        idle_timeout: float,
        progress: Callable[[], int],
        on_idle: Callable[[], None],
    ) -> None:
        self._reactor = reactor
        self._idle_timeout = idle_timeout
        self._progress = progress
        self._on_idle = on_idle
        self._timer: IDelayedCall | None = None
        self._last_seen = 0
        self._last_change = reactor.seconds()
        self._padding = 0
        self._keepalive: float | None = None
        self._ping: Callable[[bytes], bool] | None = None
        self._last_ping = 0.0

    @property
    def idle_timeout(self) -> float:
        return self._idle_timeout

    def start(self) -> None:
        """Start looking, unless already looking."""
        if self._timer is None:
            self._arm()

    def keep_alive(self, seconds: float, ping: Callable[[bytes], bool]) -> None:
        """
        From now on, after C{seconds} of silence, call C{ping(KEEPALIVE)},
        which writes it and returns C{True}, or returns C{False} when it may
        not be written now (not at an event boundary, or no client).
        """
        self._keepalive = seconds
        self._ping = ping
        self._last_ping = self._reactor.seconds()
        if self._timer is not None:
            self._timer.cancel()
            self._arm()

    def stop(self) -> None:
        """Stop for good: the exchange has ended."""
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        self._ping = None

    def _arm(self) -> None:
        tick = self._idle_timeout / WATCH_SLICES
        if self._keepalive is not None:
            tick = min(tick, self._keepalive / WATCH_SLICES)
        self._timer = self._reactor.callLater(tick, self._look)

    def _look(self) -> None:
        self._timer = None
        now = self._reactor.seconds()
        seen = self._progress() - self._padding
        if seen != self._last_seen:
            self._last_seen = seen
            self._last_change = now
        if now - self._last_change >= self._idle_timeout:
            self._ping = None
            self._on_idle()
            return
        ping = self._ping
        if (
            ping is not None
            and self._keepalive is not None
            and now - max(self._last_change, self._last_ping) >= self._keepalive
            and ping(KEEPALIVE)
        ):
            self._last_ping = now
            self._padding += len(KEEPALIVE)
        self._arm()
