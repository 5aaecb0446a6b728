"""
The rate-limit step of the access gate: a token of the client's rate, now
(else 429 with C{Retry-After}) or, with C{--rate-limit-wait}, after a
reserved wait.  The rate is the key's own (C{rate=}) or the proxy's, and the
bucket is this process's or, with C{--redis}, the fleet's (one round trip;
the process's own while Redis cannot answer).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET

from ..web import ProxyRequest
from ._fleet_access import FleetAccess
from ._rate_limit import Rate, RateLimiter, retry_after
from ._waiting import Refuse, WaitingRoom, late

#: What comes after the rate step (the cache, then a stream slot).
Next = Callable[[], bytes | int]


def _refusal(rate: Rate | None, client: str) -> str:
    """What a client over its rate is told: whose limit it is, when its own."""
    if rate is None:
        return "rate limit reached for this client"
    return f"rate limit of {rate} for key {client} reached"


class RateStep:
    """
    @param limiter: the process's token buckets (and which rate applies).
    @param fleet: the fleet's buckets in Redis, or L{None}.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        limiter: RateLimiter,
        fleet: FleetAccess | None,
        room: WaitingRoom,
        refuse: Refuse,
    ) -> None:
        self._reactor = reactor
        self._limiter = limiter
        self._fleet = fleet
        self._room = room
        self._refuse = refuse

    def run(
        self, request: ProxyRequest, client: str, rate: Rate | None, then: Next
    ) -> bytes | int:
        """
        Let C{request} of C{client} (whose own rate is C{rate}, if any)
        through to C{then}, now or later, or refuse it.
        """
        limit = self._limiter.limit_for(rate)
        if limit is not None and self._fleet is not None:
            self._in_fleet(self._fleet, request, client, rate, limit, then)
            return NOT_DONE_YET
        return self._in_process(request, client, rate, then)

    def _in_process(
        self, request: ProxyRequest, client: str, rate: Rate | None, then: Next
    ) -> bytes | int:
        limiter = self._limiter
        delay = limiter.take(client, rate)
        if delay <= 0:
            return then()
        if not self._room.has_room():
            return self._refuse(request, retry_after(delay), _refusal(rate, client), _CODE)
        # The rate the token was reserved under is the one it goes back to,
        # even if a reload changes the key's rate meanwhile.
        wait = limiter.reserve(client, rate)
        self._wait(request, wait, lambda: limiter.refund(client, rate), then)
        return NOT_DONE_YET

    def _in_fleet(
        self,
        fleet: FleetAccess,
        request: ProxyRequest,
        client: str,
        rate: Rate | None,
        limit: tuple[Rate, int],
        then: Next,
    ) -> None:
        """The rate decided in Redis: one round trip (two when it waits)."""
        per_second, burst = limit[0].per_second, limit[1]

        def refund() -> None:
            fleet.refund(client, per_second, burst)

        def decided(delay: float) -> None:
            if request.channel is None:
                if delay <= 0:
                    refund()
                return
            if delay <= 0:
                late(request, then())
            elif not self._room.has_room():
                refusal = _refusal(rate, client)
                late(request, self._refuse(request, retry_after(delay), refusal, _CODE))
            else:
                reserved = fleet.rate(client, per_second, burst, "reserve")
                reserved.addCallbacks(
                    lambda wait: self._wait(request, wait, refund, then), fall_back
                )

        def fall_back(failure: Failure) -> None:
            if request.channel is None:
                return
            refusal = fleet.unavailable(failure, request)
            late(request, refusal or self._in_process(request, client, rate, then))

        fleet.rate(client, per_second, burst, "take").addCallbacks(decided, fall_back)

    def _wait(
        self, request: ProxyRequest, delay: float, refund: Callable[[], None], then: Next
    ) -> None:
        """Wait C{delay} (a reserved turn), or C{refund} it if the client leaves."""
        if request.channel is None:
            refund()
            return
        room = self._room

        def go() -> None:
            room.exit(request)
            if request.channel is not None:
                late(request, then())

        timer = self._reactor.callLater(delay, go)

        def leave() -> None:
            room.exit(request)
            if timer.active():
                timer.cancel()
                refund()

        room.enter(request, leave)
        request.notifyFinish().addErrback(lambda _: leave())


_CODE = "rate_limit_exceeded"
