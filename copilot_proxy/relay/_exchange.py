"""
One proxied request, from the client's request to the last upstream byte.

L{Exchange} asks for a token, lets its L{RelayStrategy} decide what to send,
sends it, replays it once on a 401, copies the status and headers back, then
receives the upstream body as a L{Protocol} whose C{dataReceived} I{is} its
sink's C{write}: for a passthrough answer that is the client request's own
C{write}, with no per-chunk work of ours.  The upstream transport is
registered as the client request's push producer, so a slow client pauses the
upstream read; when the client goes away the upstream connection is dropped at
once, because an unread generation still costs money.
"""

from __future__ import annotations

import math
from dataclasses import replace
from enum import Enum
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IResponse

from ..metrics import route_group
from ..translate import UsageTap
from ..web import ProxyRequest, client_label, json_answer
from ..wire import (
    BodyError,
    Outcome,
    client_response_headers,
    quota_headers,
    upstream_request_headers,
)
from ._budget import BodyBudget
from ._context import RefuseRequest, RelayContext, UpstreamCall
from ._failures import answer_for, describe
from ._record import NO_MODEL, count_usage, record_end
from ._second_try import Again, Deliver, Discard, SecondTries
from ._sinks import BodySink
from ._strategy import RelayStrategy
from ._watchdog import Watchdog

_log = Logger(namespace="copilot_proxy.access")


class Stage(Enum):
    """Where an exchange is."""

    #: Waiting for a token, or for the strategy's upstream call.
    PREPARING = "preparing"
    #: Sent upstream; waiting for the response headers (or a 401's replay).
    WAITING = "waiting"
    #: The upstream body is being delivered to the client.
    DELIVERING = "delivering"
    #: Over; nothing more is written, counted or logged.
    ENDED = "ended"


class Exchange(Protocol):
    """
    Relays one client request to the upstream and the answer back.  Create
    one per request and call L{start}; it is also the upstream body's protocol.
    """

    transport: IPushProducer  # type: ignore[assignment]

    def __init__(
        self, request: ProxyRequest, context: RelayContext, strategy: RelayStrategy
    ) -> None:
        self._request = request
        self._context = context
        self._strategy = strategy
        self._stage = Stage.PREPARING
        self._outcome = Outcome.COMPLETE
        self._started = context.reactor.seconds()
        self._first_byte: float | None = None
        self._pending: Deferred[Any] | None = None
        self._call: UpstreamCall | None = None
        self._sink: BodySink | None = None
        self._bytes_in = 0
        self._held = 0
        self._authorization = b""
        self._upstream_code: int | None = None
        self._tap: UsageTap | None = None
        #: The error code of the proxy's own answer, for the status page.
        self._cause: str | None = None
        seat = None
        if context.seats is not None and request.seat is not None:
            seat = context.seats.seat(request.seat)
        # A seat's requests use its own tokens only, replays included.
        self._seat = seat
        self._tokens = seat.tokens if seat is not None else context.tokens
        self._tries = SecondTries(self._tokens, strategy)
        self._watchdog = Watchdog(context.reactor, context.idle_timeout, self._sent, self._idle)

    # Lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Begin: ask for a token, then send the request upstream."""
        context = self._context
        context.inflight.add(self)
        if context.metrics is not None:
            context.metrics.in_flight_changed()
        self._request.notifyFinish().addErrback(self._client_gone)
        d = self._tokens.authorization()
        self._pending = d
        d.addCallback(self._prepare)
        d.addErrback(self._no_response)

    def _prepare(self, authorization: bytes) -> Deferred[None]:
        body, self._held = _read_body(self._request, self._context.budget)
        self._bytes_in = len(body)
        d = maybeDeferred(self._strategy.prepare, self._request, body)
        d.addErrback(_unreadable_body)
        self._pending = d
        return d.addCallback(self._first_send, authorization)

    def _first_send(self, call: UpstreamCall, authorization: bytes) -> Deferred[None]:
        self._call = call
        holds = self._context.holds
        if holds is not None:
            left = holds.left(call.model)
            if left > 0:
                wait = math.ceil(left)
                raise RefuseRequest(
                    429,
                    f"the Copilot API asked this proxy to wait before sending more requests "
                    f"for this account or model; retry after {wait} s",
                    "upstream_rate_limited",
                    wait,
                )
        return self._send(authorization)

    def _send(self, authorization: bytes) -> Deferred[None]:
        call = self._call
        assert call is not None
        request = self._request
        headers = upstream_request_headers(request.requestHeaders, authorization)
        self._context.options.copilot.apply_facts(headers, call.facts, request.request_id)
        self._strategy.upstream_headers(headers, call)
        self._authorization = authorization
        base = self._seat.base if self._seat is not None else None
        d = self._context.upstream.request(request.method, call.target, headers, call.body, base)
        self._pending = d
        self._stage = Stage.WAITING
        self._watchdog.start()
        return d.addCallback(self._got_response)

    def _got_response(self, response: IResponse) -> None:
        self._pending = None
        again = self._tries.after(response, self._authorization)
        if again is not None:
            self._pending = again
            again.addCallback(self._try_again)
            again.addErrback(self._no_response)
            return
        if not 100 <= response.code <= 599:
            # No client can parse such a status line; the answer is dropped.
            response.deliverBody(Discard())
            self._respond_error(
                502,
                f"the upstream answered with an invalid HTTP status ({response.code})",
                "upstream_bad_status",
                Outcome.UPSTREAM_ERROR,
            )
            return
        context = self._context
        request = self._request
        self._upstream_code = response.code
        if context.holds is not None and response.code == 429:
            model = self._call.model if self._call is not None else None
            context.holds.seen(response.code, response.headers, model)
        if (
            context.ledger is not None
            and 200 <= response.code < 300
            and not response.headers.hasHeader(b"content-encoding")
        ):
            # The usage an answer carries is read from its head and tail at
            # the end; nothing of the client's answer changes.
            self._tap = UsageTap()
        self._first_byte = context.reactor.seconds()
        if context.metrics is not None:
            context.metrics.first_byte(request.uri, self._first_byte - self._started)
        if context.quota is not None:
            quotas = quota_headers(response.headers.getAllRawHeaders())
            if quotas:
                context.quota.update(quotas)
        _copy_head(request, response)
        sink = self._strategy.sink(request, response, context.options, self._sink_gave_up)
        self._sink = sink
        keepalive = context.options.sse_keepalive
        if keepalive is not None and sink.event_stream:
            sink.watch_boundaries()
            self._watchdog.keep_alive(keepalive, self._ping)
        self._stage = Stage.DELIVERING
        response.deliverBody(self)

    def _try_again(self, outcome: Again | Deliver) -> Deferred[None] | None:
        self._pending = None
        if isinstance(outcome, Deliver):
            self._got_response(outcome.response)
            return None
        if outcome.call is not None:
            self._call = outcome.call
        return self._send(outcome.authorization)

    # The upstream body, as an IProtocol --------------------------------

    def connectionMade(self) -> None:
        assert self._sink is not None
        self._request.registerProducer(self.transport, True)
        # The hot path: every upstream chunk goes straight to the sink, whose
        # write is request.write itself unless the answer is reshaped.
        write = self._sink.write
        if self._tap is not None:
            feed, deliver = self._tap.feed, write

            def write_and_keep(data: bytes) -> None:
                feed(data)
                deliver(data)

            write = write_and_keep
        self.dataReceived = write  # type: ignore[method-assign, assignment]

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: B008
        if self._stage is Stage.ENDED:
            return
        request = self._request
        if request.channel is None:
            # The client left (or was cut by abort()): nothing to write to.
            self._end(self._outcome)
            return
        request.unregisterProducer()
        sink = self._sink
        assert sink is not None
        if reason.check(ResponseDone, PotentialDataLoss) and self._outcome is Outcome.COMPLETE:
            sink.close()
            request.finish()
            self._end(Outcome.COMPLETE)
            return
        # The upstream stopped mid-body (or its body could not be read).  The
        # sink says what the client gets instead; unless that is a whole
        # answer, close without the final chunk so the client sees a
        # truncated response, never a complete one.
        if self._outcome is Outcome.COMPLETE:
            self._outcome = Outcome.UPSTREAM_ERROR
        if sink.cut():
            request.finish()
        else:
            request.loseConnection()
        self._end(self._outcome)

    # Failure paths -----------------------------------------------------

    def _no_response(self, failure: Failure) -> None:
        """The request failed before any response headers came back."""
        self._pending = None
        if self._stage is Stage.ENDED:
            return
        timed_out = self._context.idle_timeout if self._outcome is Outcome.TIMEOUT else None
        answer = answer_for(failure, timed_out)
        if answer is None:
            # Cancelled by abort() or by the client leaving: already handled.
            self._end(self._outcome)
            return
        if answer.outcome is Outcome.UPSTREAM_ERROR:
            _log.warn("upstream request failed: {reason}", reason=describe(failure))
        self._respond_error(
            answer.status, answer.message, answer.code, answer.outcome, answer.retry_after
        )

    def _respond_error(
        self,
        status: int,
        message: str,
        code: str,
        outcome: Outcome,
        retry_after: int | None = None,
    ) -> None:
        request = self._request
        if request.channel is None:
            self._end(Outcome.CLIENT_GONE)
            return
        if retry_after is not None:
            request.responseHeaders.setRawHeaders(b"retry-after", [b"%d" % (retry_after,)])
        body = self._strategy.error_body(status, message, code)
        request.write(json_answer(request, status, body))
        request.finish()
        self._cause = code
        self._end(outcome)

    def _client_gone(self, failure: Failure) -> None:
        if self._stage is Stage.ENDED:
            return
        if self._outcome is Outcome.COMPLETE:
            self._outcome = Outcome.CLIENT_GONE
        self._stop_upstream()
        if self._stage is not Stage.DELIVERING:
            self._end(self._outcome)

    def describe(self, now: float) -> dict[str, object]:
        """
        This exchange for the status page: who it is counted as, the model,
        the route group, its stage, its age and the body bytes sent so far.
        """
        call = self._call
        model = (call.served or call.model) if call is not None else self._strategy.model
        return {
            "key": client_label(self._request),
            "model": model or NO_MODEL,
            "route": route_group(self._request.uri),
            "stage": self._stage.value,
            "age_s": round(now - self._started, 3),
            "bytes_sent": int(self._request.sentLength),
        }

    def abort(self) -> None:
        """Cut this exchange now: used when the shutdown grace runs out."""
        if self._stage is Stage.ENDED:
            return
        self._outcome = Outcome.SHUTDOWN
        self._stop_upstream()
        channel = self._request.channel
        transport: Any = channel.transport if channel is not None else None
        if transport is not None:
            transport.abortConnection()

    def _stop_upstream(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.cancel()
        elif self._stage is Stage.DELIVERING:
            self.transport.stopProducing()

    def _give_up(self, outcome: Outcome, why: str) -> None:
        if self._stage is not Stage.ENDED:
            _log.warn("{why}; giving up", why=why)
            self._outcome = outcome
            self._stop_upstream()

    def _sink_gave_up(self) -> None:
        self._give_up(Outcome.UPSTREAM_ERROR, "the upstream body could not be read")

    # Timers ------------------------------------------------------------

    def _sent(self) -> int:
        return int(self._request.sentLength)

    def _idle(self) -> None:
        seconds = self._context.idle_timeout
        self._give_up(Outcome.TIMEOUT, f"upstream sent nothing for {seconds:g} s")

    def _ping(self, data: bytes) -> bool:
        sink = self._sink
        if self._request.channel is None or sink is None or not sink.at_event_boundary():
            return False
        self._request.write(data)
        return True

    # The end -----------------------------------------------------------

    def _end(self, outcome: Outcome) -> None:
        if self._stage is Stage.ENDED:
            return
        self._stage = Stage.ENDED
        self._watchdog.stop()
        context = self._context
        context.budget.give_back(self._held)
        self._held = 0
        self._call = None if self._call is None else replace(self._call, body=b"")
        context.inflight.discard(self)
        if context.metrics is not None:
            context.metrics.in_flight_changed()
        model = self._call.model if self._call is not None else self._strategy.model
        if context.ledger is not None:
            served = self._call.served if self._call is not None else None
            tap, self._tap = self._tap, None
            count_usage(
                context.ledger,
                client_label(self._request),
                served or model,
                outcome,
                self._upstream_code,
                # An authorization was sent with it: it went upstream.
                sent=bool(self._authorization),
                usage=tap.counts() if tap is not None else None,
                seat=self._seat.name if self._seat is not None else None,
            )
        now = context.reactor.seconds()
        record_end(
            self._request,
            outcome,
            context.metrics,
            received=self._bytes_in,
            ttfb=None if self._first_byte is None else self._first_byte - self._started,
            duration=now - self._started,
            model=model,
            recent=context.recent,
            cause=self._cause,
        )


def _read_body(request: ProxyRequest, budget: BodyBudget) -> tuple[bytes, int]:
    """
    The request body, once it fits in C{budget}, and what it holds of it.

    @raise RefuseRequest: 503, when it does not fit now.
    """
    content: Any = request.content
    held = budget.take(content.seek(0, 2))
    if held is None:
        raise RefuseRequest(
            503,
            "the proxy holds as many large request bodies as it may at once; retry in a moment",
            "proxy_busy",
        )
    content.seek(0)
    body: bytes = content.read()
    return body, held


def _copy_head(request: ProxyRequest, response: IResponse) -> None:
    """The upstream status and the headers that cross, onto the client's answer."""
    request.setResponseCode(response.code, response.phrase)
    outgoing = request.responseHeaders
    outgoing.removeHeader(b"server")
    for name, values in client_response_headers(response.headers):
        outgoing.setRawHeaders(name, values)


def _unreadable_body(failure: Failure) -> Failure:
    """
    Preparing the upstream call reads only the client's body: any failure
    there but a deliberate refusal (or a cancel) is that body's fault, and
    the client gets a 400, never a 502 nor a traceback.
    """
    if failure.check(RefuseRequest, CancelledError):
        return failure
    if failure.check(BodyError):
        message = str(failure.value)
    else:
        message = f"the request body is not a request this surface can read ({describe(failure)})"
    return Failure(RefuseRequest(400, message, "invalid_request"))
