"""
Who gets through, and when: client keys, rate limits and concurrency caps,
checked before a relay starts, so a refused request costs the upstream
nothing.

L{AccessGate.admit} runs the checks in order: a known client key (401
otherwise), the client's token bucket (429 with C{Retry-After}, or a wait in
arrival order with C{--rate-limit-wait}), then a stream slot (429, or a wait
for one).  A slot is held until the request is finished, however it ends.

A key's own C{rate=} and C{streams=} (see L{KeySettings}) replace the
proxy-wide rate and per-client cap for its requests.  They are read from the
key store at each request, so a reload of the keys file applies to the next
request.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET

from ..web import ProxyRequest, respond_error
from ._budgets import BudgetVerdict, CreditBudgets
from ._cache import ResponseCache
from ._fleet_access import SLOT_POLL, FleetAccess, late
from ._keys import (
    KEY_CHALLENGE,
    KEY_REQUIRED,
    NANO_AIU_PER_CREDIT,
    CreditBudget,
    KeySettings,
    KeyStore,
    check_client_key,
)
from ._rate_limit import Rate, RateLimiter, retry_after
from ._stream_slots import StreamSlots

# A budget whose spending cannot be read lets the request through: the
# ledger being away is no reason to stop serving.
_NO_VERDICT = BudgetVerdict(False, 0, 0)

# How long a client told to retry because every stream slot is taken should
# wait: slots free up as streams end, which no clock predicts.
_SLOT_RETRY_AFTER = 1


def _write_late(request: ProxyRequest, outcome: bytes | int) -> None:
    """Finish with a refusal decided after C{render} has returned."""
    if isinstance(outcome, bytes):
        request.write(outcome)
        request.finish()


def _rate_refusal(rate: Rate | None, client: str) -> str:
    """What a client over its rate is told: whose limit it is, when its own."""
    if rate is None:
        return "rate limit reached for this client"
    return f"rate limit of {rate} for key {client} reached"


def _address(request: ProxyRequest) -> str:
    address = request.getClientAddress()
    if isinstance(address, (IPv4Address, IPv6Address)):
        return f"addr:{address.host}"
    return "addr:local"


class AccessGate:
    """
    The checks every request passes before it is forwarded.

    @param keys: the client keys; when it holds none, anyone may call.
    @param limiter: token buckets per client, or L{None} for no rate limit
        (not even the keys' own rates).
    @param slots: concurrency caps, or L{None} for none (not even the keys'
        own caps).
    @param wait: queue requests over a limit instead of answering 429.
    @param max_queue: at most this many requests wait at once (then 429).
    @param on_refused: called with each request the gate refuses and its
        status, for metrics.
    @param cache: answers cacheable C{GET}s after the rate limit and before
        a stream slot is taken (a hit costs no slot), or L{None}.
    @param fleet: with C{--redis}, the rate limits and stream caps shared by
        every process; the process's own (C{limiter}, C{slots}) serve while
        Redis cannot answer.
    @param budgets: the AI-credits budgets of keys that have one (from the
        usage ledger), or L{None}.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        keys: KeyStore | None = None,
        limiter: RateLimiter | None = None,
        slots: StreamSlots | None = None,
        wait: bool = False,
        max_queue: int = 100,
        on_refused: Callable[[ProxyRequest, int], object] | None = None,
        cache: ResponseCache | None = None,
        fleet: FleetAccess | None = None,
        budgets: CreditBudgets | None = None,
    ) -> None:
        self._reactor = reactor
        self._on_refused = on_refused
        self.cache = cache
        self.keys = keys
        self._limiter = limiter
        self.slots = slots
        self.fleet = fleet
        self.budgets = budgets
        self._wait = wait
        self._max_queue = max_queue
        # Each waiting request, with what takes it out of its queue.
        self._queued: dict[ProxyRequest, Callable[[], None]] = {}

    @property
    def waiting(self) -> int:
        """How many requests wait for their turn right now."""
        return len(self._queued)

    def refuse_waiting(self) -> None:
        """
        Answer every waiting request 503 (the proxy is stopping): they would
        otherwise be cut without an answer when the connections close.
        """
        for request, leave in list(self._queued.items()):
            leave()
            _write_late(
                request,
                respond_error(
                    request,
                    503,
                    "the proxy is restarting or stopping; retry in a moment",
                    "proxy_error",
                    "shutting_down",
                    {b"retry-after": b"1"},
                ),
            )

    def admit(self, request: ProxyRequest, forward: Callable[[ProxyRequest], None]) -> bytes | int:
        """
        Check C{request}; call C{forward(request)} once it may go upstream
        (now or after a wait).

        @return: what C{render} returns: an error body, or C{NOT_DONE_YET}.
        """
        check = check_client_key(self.keys, request.requestHeaders)
        if not check.allowed:
            if self._on_refused is not None:
                self._on_refused(request, 401)
            return respond_error(
                request,
                401,
                KEY_REQUIRED,
                "invalid_request_error",
                "invalid_api_key",
                {b"www-authenticate": KEY_CHALLENGE},
            )
        label = request.client_key = check.name
        client = label if label is not None else _address(request)
        settings = check.settings
        budget = settings.credits
        if budget is not None and self.budgets is not None and label is not None:
            return self._within_budget(request, label, budget, settings, forward)
        return self._rate_step(request, client, settings, forward)

    def _within_budget(
        self,
        request: ProxyRequest,
        key: str,
        budget: CreditBudget,
        settings: KeySettings,
        forward: Callable[[ProxyRequest], None],
    ) -> bytes | int:
        """A key over its AI-credits budget gets 429 until the period resets."""
        assert self.budgets is not None
        verdicts: list[BudgetVerdict] = []
        d = self.budgets.check(key, budget)
        d.addCallbacks(verdicts.append, lambda _: verdicts.append(_NO_VERDICT))
        if verdicts:
            return self._after_budget(request, key, budget, settings, forward, verdicts[0])

        def decided(verdict: BudgetVerdict) -> None:
            if request.channel is not None:
                late(request, self._after_budget(request, key, budget, settings, forward, verdict))

        d.addCallback(lambda _: decided(verdicts[0]))
        return NOT_DONE_YET

    def _after_budget(
        self,
        request: ProxyRequest,
        key: str,
        budget: CreditBudget,
        settings: KeySettings,
        forward: Callable[[ProxyRequest], None],
        verdict: BudgetVerdict,
    ) -> bytes | int:
        if not verdict.over:
            return self._rate_step(request, key, settings, forward)
        resets = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(verdict.resets_at))
        wait = max(1, int(verdict.resets_at - time.time()))
        if self._on_refused is not None:
            self._on_refused(request, 429)
        spent = verdict.spent / NANO_AIU_PER_CREDIT
        return respond_error(
            request,
            429,
            f"the AI-credits budget of key {key} ({budget} credits) is used up "
            f"({spent:.2f} spent); it resets at {resets}",
            "rate_limit_error",
            "budget_exceeded",
            {b"retry-after": b"%d" % (wait,)},
        )

    def _rate_step(
        self,
        request: ProxyRequest,
        client: str,
        settings: KeySettings,
        forward: Callable[[ProxyRequest], None],
    ) -> bytes | int:
        if self._limiter is None:
            return self._after_rate(request, client, settings, forward)
        limit = self._limiter.limit_for(settings.rate)
        if limit is not None and self.fleet is not None:
            self._fleet_rate(self.fleet, request, client, settings, forward, limit)
            return NOT_DONE_YET
        return self._local_rate(request, client, settings, forward)

    def _local_rate(
        self,
        request: ProxyRequest,
        client: str,
        settings: KeySettings,
        forward: Callable[[ProxyRequest], None],
    ) -> bytes | int:
        assert self._limiter is not None
        limiter = self._limiter
        rate = settings.rate
        delay = limiter.take(client, rate)
        if delay <= 0:
            return self._after_rate(request, client, settings, forward)
        if not self._wait or self.waiting >= self._max_queue:
            return self._too_many(
                request,
                retry_after(delay),
                _rate_refusal(rate, client),
                "rate_limit_exceeded",
            )
        # The rate the token was reserved under is the one it goes back to,
        # even if a reload changes the key's rate meanwhile.
        wait = limiter.reserve(client, rate)
        self._wait_turn(
            request, client, settings, forward, wait, lambda: limiter.refund(client, rate)
        )
        return NOT_DONE_YET

    def _fleet_rate(
        self,
        fleet: FleetAccess,
        request: ProxyRequest,
        client: str,
        settings: KeySettings,
        forward: Callable[[ProxyRequest], None],
        limit: tuple[Rate, int],
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
                late(request, self._after_rate(request, client, settings, forward))
            elif not self._wait or self.waiting >= self._max_queue:
                refusal = _rate_refusal(settings.rate, client)
                late(
                    request,
                    self._too_many(request, retry_after(delay), refusal, "rate_limit_exceeded"),
                )
            else:
                reserved = fleet.rate(client, per_second, burst, "reserve")
                reserved.addCallbacks(
                    lambda wait: self._wait_turn(request, client, settings, forward, wait, refund),
                    fall_back,
                )

        def fall_back(failure: Failure) -> None:
            if request.channel is None:
                return
            refusal = fleet.unavailable(failure, request)
            late(request, refusal or self._local_rate(request, client, settings, forward))

        fleet.rate(client, per_second, burst, "take").addCallbacks(decided, fall_back)

    def _after_rate(
        self,
        request: ProxyRequest,
        client: str,
        settings: KeySettings,
        forward: Callable[[ProxyRequest], None],
    ) -> bytes | int:
        if self.cache is not None:

            def go_upstream(later: ProxyRequest) -> None:
                _write_late(later, self._to_slot(later, client, settings.streams, forward))

            if self.cache.serve(request, go_upstream):
                return NOT_DONE_YET
        return self._to_slot(request, client, settings.streams, forward)

    # Rate-limit waits --------------------------------------------------

    def _wait_turn(
        self,
        request: ProxyRequest,
        client: str,
        settings: KeySettings,
        forward: Callable[[ProxyRequest], None],
        delay: float,
        refund: Callable[[], None],
    ) -> None:
        """Wait C{delay} (a reserved turn), or C{refund} it if the client leaves."""
        if request.channel is None:
            refund()
            return

        def go() -> None:
            del self._queued[request]
            if request.channel is None:
                return
            late(request, self._after_rate(request, client, settings, forward))

        timer = self._reactor.callLater(delay, go)

        def leave() -> None:
            if timer.active():
                timer.cancel()
                del self._queued[request]
                refund()

        self._queued[request] = leave
        request.notifyFinish().addErrback(lambda _: leave())

    # Stream slots ------------------------------------------------------

    def _to_slot(
        self,
        request: ProxyRequest,
        client: str,
        cap: int | None,
        forward: Callable[[ProxyRequest], None],
    ) -> bytes | int:
        slots = self.slots
        if slots is None:
            forward(request)
            return NOT_DONE_YET
        per_client = cap if cap is not None else slots.per_key
        if self.fleet is not None and (slots.total is not None or per_client is not None):
            self._fleet_slot(self.fleet, request, client, cap, per_client, forward)
            return NOT_DONE_YET
        return self._local_slot(request, client, cap, forward)

    def _fleet_slot(
        self,
        fleet: FleetAccess,
        request: ProxyRequest,
        client: str,
        cap: int | None,
        per_client: int | None,
        forward: Callable[[ProxyRequest], None],
    ) -> None:
        """
        A stream slot leased in Redis; waiting requests ask again every
        L{SLOT_POLL} seconds (a slot freed elsewhere sends no word).
        """
        assert self.slots is not None
        total = self.slots.total

        def gone() -> bool:
            return request.channel is None or bool(request.finished)

        def decided(lease: str | None) -> None:
            if gone():
                self._queued.pop(request, None)
                if lease is not None:
                    fleet.release(lease)
                return
            if lease is not None:
                self._queued.pop(request, None)
                request.notifyFinish().addBoth(lambda _: fleet.release(lease))
                forward(request)
                return
            if request in self._queued:
                self._reactor.callLater(SLOT_POLL, ask)
            elif not self._wait or self.waiting >= self._max_queue:
                if cap is not None:
                    message = f"stream limit of {cap} in flight for key {client} reached"
                else:
                    message = "too many requests in flight for this proxy or this client"
                late(
                    request,
                    self._too_many(request, _SLOT_RETRY_AFTER, message, "too_many_streams"),
                )
            else:
                self._queued[request] = lambda: None
                request.notifyFinish().addErrback(lambda _: self._queued.pop(request, None))
                self._reactor.callLater(SLOT_POLL, ask)

        def fall_back(failure: Failure) -> None:
            self._queued.pop(request, None)
            if gone():
                return
            refusal = fleet.unavailable(failure, request)
            late(request, refusal or self._local_slot(request, client, cap, forward))

        def ask() -> None:
            if gone():
                self._queued.pop(request, None)
                return
            fleet.acquire(client, total, per_client).addCallbacks(decided, fall_back)

        ask()

    def _local_slot(
        self,
        request: ProxyRequest,
        client: str,
        cap: int | None,
        forward: Callable[[ProxyRequest], None],
    ) -> bytes | int:
        slots = self.slots
        assert slots is not None
        if slots.try_acquire(client, cap):
            self._hold(request, slots, client, forward)
            return NOT_DONE_YET
        if not self._wait or self.waiting >= self._max_queue:
            if cap is not None and slots.key_full(client, cap):
                message = f"stream limit of {cap} in flight for key {client} reached"
            else:
                message = "too many requests in flight for this proxy or this client"
            return self._too_many(request, _SLOT_RETRY_AFTER, message, "too_many_streams")

        def go() -> None:
            self._queued.pop(request, None)
            if request.channel is None:
                slots.release(client)
                return
            self._hold(request, slots, client, forward)

        waiter = slots.wait(client, go, cap)

        def leave() -> None:
            if self._queued.pop(request, None) is not None:
                slots.cancel(waiter)

        self._queued[request] = leave
        request.notifyFinish().addErrback(lambda _: leave())
        return NOT_DONE_YET

    def _hold(
        self,
        request: ProxyRequest,
        slots: StreamSlots,
        client: str,
        forward: Callable[[ProxyRequest], None],
    ) -> None:
        request.notifyFinish().addBoth(lambda _: slots.release(client))
        forward(request)

    def _too_many(self, request: ProxyRequest, seconds: int, message: str, code: str) -> bytes:
        if self._on_refused is not None:
            self._on_refused(request, 429)
        return respond_error(
            request,
            429,
            f"{message}; retry after {seconds} s",
            "rate_limit_error",
            code,
            {b"retry-after": b"%d" % (seconds,)},
        )
