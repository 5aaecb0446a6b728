"""
Who gets through, and when: client keys, budgets, rate limits and
concurrency caps, checked before a relay starts, so a refused request costs
the upstream nothing.

L{AccessGate.admit} runs the checks in order: a known client key (401
otherwise), the key's AI-credits budget (429 once spent), the client's rate
(L{RateStep}: 429 with C{Retry-After}, or a wait in arrival order with
C{--rate-limit-wait}), the C{GET /models} cache, then a stream slot
(L{SlotStep}: 429, or a wait for one).  A slot is held until the request is
finished, however it ends.

A key's own C{rate=}, C{streams=} and C{credits=} (see L{KeySettings}) are
read from the key store at each request, so a reload of the keys file
applies to the next request.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime
from twisted.web.server import NOT_DONE_YET

from ..web import ProxyRequest, client_label, respond_error
from ._budgets import BudgetVerdict, CreditBudgets
from ._cache import ResponseCache
from ._fleet_access import FleetAccess
from ._keys import (
    KEY_CHALLENGE,
    KEY_REQUIRED,
    NANO_AIU_PER_CREDIT,
    CreditBudget,
    KeySettings,
    KeyStore,
    check_client_key,
)
from ._rate_limit import RateLimiter
from ._rate_step import RateStep
from ._slot_step import SlotStep
from ._stream_slots import StreamSlots
from ._waiting import WaitingRoom, late

# A budget whose spending cannot be read lets the request through: the
# ledger being away is no reason to stop serving.
_NO_VERDICT = BudgetVerdict(False, 0, 0)


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
    @param on_refused: called with each request the gate refuses, its
        status and error code, for metrics, the ledger and the status page.
    @param cache: answers cacheable C{GET}s after the rate limit and before
        a stream slot is taken (a hit costs no slot), or L{None}.
    @param fleet: with C{--redis}, the rate limits and stream caps shared by
        every process; the process's own (C{limiter}, C{slots}) serve while
        Redis cannot answer.
    @param budgets: the AI-credits budgets of keys that have one (from the
        usage ledger), or L{None}.
    @param seats_only: refuse (403) keys bound to no seat (C{--seats-only}).
    """

    def __init__(
        self,
        reactor: IReactorTime,
        keys: KeyStore | None = None,
        limiter: RateLimiter | None = None,
        slots: StreamSlots | None = None,
        wait: bool = False,
        max_queue: int = 100,
        on_refused: Callable[[ProxyRequest, int, str], object] | None = None,
        cache: ResponseCache | None = None,
        fleet: FleetAccess | None = None,
        budgets: CreditBudgets | None = None,
        seats_only: bool = False,
    ) -> None:
        self._on_refused = on_refused
        self.seats_only = seats_only
        self.cache = cache
        self.keys = keys
        self.slots = slots
        self.fleet = fleet
        self.budgets = budgets
        self._room = WaitingRoom(wait, max_queue)
        self._rates = (
            None
            if limiter is None
            else RateStep(reactor, limiter, fleet, self._room, self._too_many)
        )
        self._slots = (
            None if slots is None else SlotStep(reactor, slots, fleet, self._room, self._too_many)
        )

    @property
    def waiting(self) -> int:
        """How many requests wait for their turn right now."""
        return len(self._room)

    def refuse_waiting(self) -> None:
        """
        Answer every waiting request 503 (the proxy is stopping): they would
        otherwise be cut without an answer when the connections close.
        """
        for request in self._room.empty():
            late(
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
                self._on_refused(request, 401, "invalid_api_key")
            return respond_error(
                request,
                401,
                KEY_REQUIRED,
                "invalid_request_error",
                "invalid_api_key",
                {b"www-authenticate": KEY_CHALLENGE},
            )
        label = request.client_key = check.name
        # Limited and counted as its key's name, else its address.
        client = client_label(request)
        settings = check.settings
        request.seat = settings.seat
        if self.seats_only and settings.seat is None:
            if self._on_refused is not None:
                self._on_refused(request, 403, "seat_required")
            return respond_error(
                request,
                403,
                "this proxy sends requests only with a seat's own Copilot login "
                "(--seats-only) and this client key is bound to none: bind it in the "
                "keys file (<key> NAME seat=NAME) and log the seat in "
                "(copilot-proxy login --seat NAME, or POST /_proxy/seat/login)",
                "permission_error",
                "seat_required",
            )
        budget = settings.credits
        if budget is not None and self.budgets is not None and label is not None:
            return self._within_budget(request, label, budget, settings, forward)
        return self._rate(request, client, settings, forward)

    # Budgets -----------------------------------------------------------

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

        def decided(verdict: BudgetVerdict) -> bytes | int:
            if not verdict.over:
                return self._rate(request, key, settings, forward)
            return self._over_budget(request, key, budget, verdict)

        if verdicts:
            return decided(verdicts[0])
        d.addCallback(lambda _: late(request, decided(verdicts[0])))
        return NOT_DONE_YET

    def _over_budget(
        self, request: ProxyRequest, key: str, budget: CreditBudget, verdict: BudgetVerdict
    ) -> bytes:
        resets = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(verdict.resets_at))
        wait = max(1, int(verdict.resets_at - time.time()))
        if self._on_refused is not None:
            self._on_refused(request, 429, "budget_exceeded")
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

    # Rate, cache, slot -------------------------------------------------

    def _rate(
        self,
        request: ProxyRequest,
        client: str,
        settings: KeySettings,
        forward: Callable[[ProxyRequest], None],
    ) -> bytes | int:
        def then() -> bytes | int:
            return self._after_rate(request, client, settings, forward)

        if self._rates is None:
            return then()
        return self._rates.run(request, client, settings.rate, then)

    def _after_rate(
        self,
        request: ProxyRequest,
        client: str,
        settings: KeySettings,
        forward: Callable[[ProxyRequest], None],
    ) -> bytes | int:
        if self.cache is not None:

            def go_upstream(later: ProxyRequest) -> None:
                late(later, self._slot(later, client, settings.streams, forward))

            if self.cache.serve(request, go_upstream):
                return NOT_DONE_YET
        return self._slot(request, client, settings.streams, forward)

    def _slot(
        self,
        request: ProxyRequest,
        client: str,
        cap: int | None,
        forward: Callable[[ProxyRequest], None],
    ) -> bytes | int:
        if self._slots is None:
            forward(request)
            return NOT_DONE_YET
        return self._slots.run(request, client, cap, forward)

    def _too_many(self, request: ProxyRequest, seconds: int, message: str, code: str) -> bytes:
        if self._on_refused is not None:
            self._on_refused(request, 429, code)
        return respond_error(
            request,
            429,
            f"{message}; retry after {seconds} s",
            "rate_limit_error",
            code,
            {b"retry-after": b"%d" % (seconds,)},
        )
