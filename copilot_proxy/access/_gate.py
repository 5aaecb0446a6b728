"""
Who gets through, and when: client keys, rate limits and concurrency caps,
checked before a relay starts, so a refused request costs the upstream
nothing.

L{AccessGate.admit} runs the checks in order: a known client key (401
otherwise), the client's token bucket (429 with C{Retry-After}, or a wait in
arrival order with C{--rate-limit-wait}), then a stream slot (429, or a wait
for one).  A slot is held until the request is finished, however it ends.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IReactorTime
from twisted.web.server import NOT_DONE_YET

from ..web import ProxyRequest, respond_error
from ._cache import ResponseCache
from ._keys import KEY_CHALLENGE, KEY_REQUIRED, KeyStore, check_client_key
from ._rate_limit import RateLimiter, retry_after
from ._stream_slots import StreamSlots

# How long a client told to retry because every stream slot is taken should
# wait: slots free up as streams end, which no clock predicts.
_SLOT_RETRY_AFTER = 1


def _write_late(request: ProxyRequest, outcome: bytes | int) -> None:
    """Finish with a refusal decided after C{render} has returned."""
    if isinstance(outcome, bytes):
        request.write(outcome)
        request.finish()


def _address(request: ProxyRequest) -> str:
    address = request.getClientAddress()
    if isinstance(address, (IPv4Address, IPv6Address)):
        return f"addr:{address.host}"
    return "addr:local"


class AccessGate:
    """
    The checks every request passes before it is forwarded.

    @param keys: the client keys; when it holds none, anyone may call.
    @param limiter: token buckets per client, or L{None} for no rate limit.
    @param slots: concurrency caps, or L{None} for none.
    @param wait: queue requests over a limit instead of answering 429.
    @param max_queue: at most this many requests wait at once (then 429).
    @param on_refused: called with each request the gate refuses and its
        status, for metrics.
    @param cache: answers cacheable C{GET}s after the rate limit and before
        a stream slot is taken (a hit costs no slot), or L{None}.
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
    ) -> None:
        self._reactor = reactor
        self._on_refused = on_refused
        self.cache = cache
        self.keys = keys
        self._limiter = limiter
        self.slots = slots
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
        if self._limiter is not None:
            delay = self._limiter.take(client)
            if delay > 0:
                if not self._wait or self.waiting >= self._max_queue:
                    return self._too_many(
                        request,
                        retry_after(delay),
                        "rate limit reached for this client",
                        "rate_limit_exceeded",
                    )
                self._wait_turn(request, client, forward)
                return NOT_DONE_YET
        return self._after_rate(request, client, forward)

    def _after_rate(
        self, request: ProxyRequest, client: str, forward: Callable[[ProxyRequest], None]
    ) -> bytes | int:
        if self.cache is not None:

            def go_upstream(later: ProxyRequest) -> None:
                _write_late(later, self._to_slot(later, client, forward))

            if self.cache.serve(request, go_upstream):
                return NOT_DONE_YET
        return self._to_slot(request, client, forward)

    # Rate-limit waits --------------------------------------------------

    def _wait_turn(
        self, request: ProxyRequest, client: str, forward: Callable[[ProxyRequest], None]
    ) -> None:
        assert self._limiter is not None
        limiter = self._limiter
        delay = limiter.reserve(client)

        def go() -> None:
            del self._queued[request]
            if request.channel is None:
                return
            _write_late(request, self._after_rate(request, client, forward))

        timer = self._reactor.callLater(delay, go)

        def leave() -> None:
            if timer.active():
                timer.cancel()
                del self._queued[request]
                limiter.refund(client)

        self._queued[request] = leave
        request.notifyFinish().addErrback(lambda _: leave())

    # Stream slots ------------------------------------------------------

    def _to_slot(
        self, request: ProxyRequest, client: str, forward: Callable[[ProxyRequest], None]
    ) -> bytes | int:
        slots = self.slots
        if slots is None:
            forward(request)
            return NOT_DONE_YET
        if slots.try_acquire(client):
            self._hold(request, slots, client, forward)
            return NOT_DONE_YET
        if not self._wait or self.waiting >= self._max_queue:
            return self._too_many(
                request,
                _SLOT_RETRY_AFTER,
                "too many requests in flight for this proxy or this client",
                "too_many_streams",
            )

        def go() -> None:
            self._queued.pop(request, None)
            if request.channel is None:
                slots.release(client)
                return
            self._hold(request, slots, client, forward)

        waiter = slots.wait(client, go)

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
