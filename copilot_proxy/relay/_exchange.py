"""
One proxied request, from the client's request to the last upstream byte.

L{UpstreamRelay} sends the request upstream, copies the status and headers
back, then receives the upstream body as a L{Protocol} whose C{dataReceived}
I{is} the client request's C{write}: each chunk goes to the client socket as
it arrives, with no per-chunk work of ours.  The upstream transport is
registered as the client request's push producer, so a slow client pauses the
upstream read; when the client goes away the upstream connection is dropped at
once, because an unread generation still costs money.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import TimeoutError as ConnectTimeoutError
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone, ResponseFailed, ResponseNeverReceived
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse
from twisted.web.server import Request

from ..metrics import ProxyMetrics
from ..tokens import TokenSource, TokenUnavailable
from ..upstream import Upstream
from ..wire import (
    CopilotHeaders,
    client_response_headers,
    json_answer,
    model_from_body,
    new_request_id,
    openai_error,
    parse_json_body,
    safe_model,
    upstream_request_headers,
    upstream_target,
)

_log = Logger(namespace="copilot_proxy.access")

# How the exchange ended, as the access log reports it.
COMPLETE = "complete"
CLIENT_GONE = "client_gone"
UPSTREAM_ERROR = "upstream_error"
TIMEOUT = "timeout"
SHUTDOWN = "shutdown"
REFUSED = "refused"

# The name of the client key that a request was let in with, when client keys
# are configured: whatever checks keys sets this attribute on the request.
CLIENT_KEY_ATTRIBUTE = "client_key_name"

# The idle watchdog looks this many times per idle period, so a stream is
# declared idle between 1 and 1.25 idle periods after its last byte, with one
# timer per stream and nothing added to the per-chunk path.
_WATCH_SLICES = 4

# Written to an idle event stream; a comment line, which SSE parsers skip.
KEEPALIVE = b": keep-alive\n\n"

# The status the Copilot API gives to stale version headers.
_STALE_VERSION = 466


@dataclass(frozen=True)
class RelayOptions:
    """
    Per-proxy settings of the request and response shaping.

    @ivar copilot: the Copilot request headers to add.
    @ivar sse_keepalive: seconds without upstream bytes after which an event
        stream gets a keep-alive comment, or L{None} for never.
    """

    copilot: CopilotHeaders = field(default_factory=CopilotHeaders)
    sse_keepalive: float | None = 15.0


class RefuseRequest(Exception):
    """
    Raised while preparing the upstream request: answer the client with this
    error instead of sending anything upstream.
    """

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class InFlight:
    """
    The relays that have not ended yet, so that a stopping service can wait
    for them and then abort the rest.
    """

    def __init__(self) -> None:
        self._relays: set[UpstreamRelay] = set()
        self._waiters: list[Deferred[None]] = []

    def __len__(self) -> int:
        return len(self._relays)

    def add(self, relay: UpstreamRelay) -> None:
        self._relays.add(relay)

    def discard(self, relay: UpstreamRelay) -> None:
        self._relays.discard(relay)
        if not self._relays:
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                d.callback(None)

    def drained(self) -> Deferred[None]:
        """Fires when no relay is in flight (at once if none is)."""
        d: Deferred[None] = Deferred(self._waiters.remove)
        if self._relays:
            self._waiters.append(d)
        else:
            d.callback(None)
        return d

    def abort_all(self) -> None:
        """Cut every relay still in flight, upstream and client side."""
        for relay in list(self._relays):
            relay.abort()


def _path_for_log(uri: bytes) -> str:
    """The request path with query parameter names but not their values."""
    path, _, query = uri.partition(b"?")
    text = path.decode("ascii", "replace")
    if query:
        names = [field.partition(b"=")[0] for field in query.split(b"&") if field]
        text += "?" + "&".join(n.decode("ascii", "replace") for n in names)
    return text


class UpstreamRelay(Protocol):
    """
    Relays one client request to the upstream and the answer back.

    Create one per request and call L{start}; the instance also serves as the
    upstream response body's protocol.
    """

    transport: IPushProducer  # type: ignore[assignment]

    def __init__(
        self,
        request: Request,
        upstream: Upstream,
        tokens: TokenSource,
        reactor: IReactorTime,
        idle_timeout: float,
        inflight: InFlight,
        metrics: ProxyMetrics | None = None,
        options: RelayOptions | None = None,
    ) -> None:
        self._request = request
        self._upstream = upstream
        self._tokens = tokens
        self._reactor = reactor
        self._idle_timeout = idle_timeout
        self._inflight = inflight
        self._metrics = metrics
        self._started = reactor.seconds()
        self._request_id = new_request_id()
        self._model: str | None = None
        self._bytes_in = 0
        self._first_byte: float | None = None
        self._pending: Deferred[Any] | None = None
        self._watch: IDelayedCall | None = None
        self._last_seen = 0
        self._last_change = self._started
        self._ended = False
        self._outcome = COMPLETE
        self._streaming = False
        self._options = options if options is not None else RelayOptions()
        self._writer: Callable[[bytes], None] = request.write
        self._collected: list[bytes] | None = None
        self._rewrite: Callable[[bytes], bytes] | None = None
        self._keepalive: float | None = None
        self._tail = b""
        self._padding = 0
        self._last_ping = 0.0
        self._authorization = b""
        self._replayed = False

    # Lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Begin: ask for a token, then send the request upstream."""
        self._inflight.add(self)
        if self._metrics is not None:
            self._metrics.in_flight_changed()
        self._request.notifyFinish().addErrback(self._client_gone)
        d = self._tokens.authorization()
        self._pending = d
        d.addCallback(self._send)
        d.addErrback(self._no_response)

    def _send(self, authorization: bytes) -> Deferred[None]:
        request = self._request
        content: Any = request.content
        content.seek(0)
        body: bytes = content.read()
        self._bytes_in = len(body)
        target, body, payload = self._prepare(body)
        # The body is parsed once: reuse it for the log's model field.
        if isinstance(payload, dict):
            self._model = safe_model(payload.get("model"))
        else:
            self._model = model_from_body(body, request.getHeader(b"content-type"))
        headers = self._upstream_headers(authorization, payload)
        self._authorization = authorization
        d = self._upstream.request(request.method, target, headers, body)
        self._pending = d
        if self._watch is None:
            self._arm_watchdog()
        return d.addCallback(self._got_response)

    def _prepare(self, body: bytes) -> tuple[bytes, bytes, object]:
        """
        The upstream target, the body to send and the parsed JSON body (for
        the Copilot headers).  The body is parsed once, here, and only for a
        POST; the answer is never parsed on this path.

        @raise RefuseRequest: to answer the client without going upstream.
        """
        payload = parse_json_body(body) if self._request.method == b"POST" else None
        return upstream_target(self._request.uri), body, payload

    def _upstream_headers(self, authorization: bytes, payload: object) -> Headers:
        headers = upstream_request_headers(self._request.requestHeaders, authorization)
        self._options.copilot.apply(headers, payload, self._request_id)
        return headers

    def _got_response(self, response: IResponse) -> None:
        self._pending = None
        if response.code == 401 and not self._replayed:
            # The token was refused (expired early, revoked upstream): get a
            # fresher one and send the request once more; the client never
            # sees this 401.  Nothing has been written to the client yet.
            self._replayed = True
            d = self._tokens.refreshed_after(self._authorization)
            self._pending = d
            d.addCallbacks(
                self._replay, self._drop, callbackArgs=(response,), errbackArgs=(response,)
            )
            d.addErrback(self._no_response)
            return
        self._first_byte = self._reactor.seconds()
        request = self._request
        if self._metrics is not None:
            self._metrics.first_byte(request.uri, self._first_byte - self._started)
        request.setResponseCode(response.code, response.phrase)
        outgoing = request.responseHeaders
        outgoing.removeHeader(b"server")
        for name, values in client_response_headers(response.headers):
            outgoing.setRawHeaders(name, values)
        self._begin_body(response)

    def _begin_body(self, response: IResponse) -> None:
        """
        Choose how the upstream body reaches the client, and start reading it.
        """
        request = self._request
        if response.code == _STALE_VERSION and not response.headers.hasHeader(b"content-encoding"):
            self._collect(response, self._explain_stale_version)
            return
        if isinstance(response.length, int) and request.method != b"HEAD":
            request.responseHeaders.setRawHeaders(b"content-length", [b"%d" % (response.length,)])
        # Send the status line and headers now: a model may think for a
        # minute before its first token, and the client should know the
        # request was accepted meanwhile.
        request.write(b"")
        if self._options.sse_keepalive is not None and is_event_stream(response.headers):
            self._keep_alive(self._options.sse_keepalive)
            self._writer = self._write_noting_tail
        self._streaming = True
        response.deliverBody(self)

    def _collect(self, response: IResponse, rewrite: Callable[[bytes], bytes]) -> None:
        """
        Read the (small) upstream body whole and send C{rewrite(body)} instead,
        as JSON.  Only for answers that are not streams, such as errors.
        """
        self._request.responseHeaders.removeHeader(b"content-length")
        self._collected = []
        self._writer = self._collected.append
        self._rewrite = rewrite
        self._streaming = True
        response.deliverBody(self)

    def _body_done(self) -> None:
        """The upstream body ended well: write what was held back, if anything."""
        if self._collected is None or self._rewrite is None:
            return
        body = self._rewrite(b"".join(self._collected))
        headers = self._request.responseHeaders
        headers.setRawHeaders(b"content-type", [b"application/json"])
        headers.setRawHeaders(b"content-length", [b"%d" % (len(body),)])
        self._request.write(body)

    def _explain_stale_version(self, body: bytes) -> bytes:
        return openai_error(
            self._options.copilot.stale_version_message(upstream_error_text(body)),
            "invalid_request_error",
            "copilot_version_headers_stale",
        )

    def _write_noting_tail(self, data: bytes) -> None:
        # Event streams only: the keep-alive may go out only where the last
        # chunk ended an event.
        self._tail = data
        self._request.write(data)

    def _at_event_boundary(self) -> bool:
        return self._tail == b"" or self._tail.endswith((b"\n\n", b"\r\n\r\n"))

    def _replay(self, fresh: bytes | None, refused: IResponse) -> Deferred[None] | None:
        self._pending = None
        if fresh is None:
            # No fresher token to be had: the 401 goes to the client.
            self._got_response(refused)
            return None
        refused.deliverBody(_Discard())
        return self._send(fresh)

    def _drop(self, failure: Failure, refused: IResponse) -> Failure:
        refused.deliverBody(_Discard())
        return failure

    # The upstream body, as an IProtocol --------------------------------

    def connectionMade(self) -> None:
        self._request.registerProducer(self.transport, True)
        # The hot path: every upstream chunk goes straight to the client
        # (self._writer is request.write itself unless the answer is reshaped).
        self.dataReceived = self._writer  # type: ignore[method-assign, assignment]

    def dataReceived(self, data: bytes) -> None:  # replaced in connectionMade
        self._request.write(data)

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: B008
        self._streaming = False
        if self._ended:
            return
        request = self._request
        if request.channel is None:
            # The client left (or was cut by abort()): nothing to write to.
            self._end(self._outcome)
            return
        request.unregisterProducer()
        if reason.check(ResponseDone, PotentialDataLoss):
            self._body_done()
            request.finish()
            self._end(COMPLETE)
        else:
            # The upstream stopped mid-body.  Close without the final chunk so
            # the client sees a truncated response, never a complete one.
            if self._outcome == COMPLETE:
                self._outcome = UPSTREAM_ERROR
            request.loseConnection()
            self._end(self._outcome)

    # Failure paths -----------------------------------------------------

    def _no_response(self, failure: Failure) -> None:
        """The request failed before any response headers came back."""
        self._pending = None
        if self._ended:
            return
        if failure.check(TokenUnavailable):
            self._respond_error(503, str(failure.value), "token_unavailable", REFUSED)
            return
        if failure.check(RefuseRequest):
            refused: RefuseRequest = failure.value  # type: ignore[assignment]
            self._respond_error(refused.status, refused.message, refused.code, REFUSED)
            return
        if self._outcome == TIMEOUT or failure.check(ConnectTimeoutError):
            seconds = self._idle_timeout if self._outcome == TIMEOUT else None
            what = f"within {seconds:g} s" if seconds else "in time"
            self._respond_error(
                504, f"the upstream did not answer {what}", "upstream_timeout", TIMEOUT
            )
            return
        if failure.check(CancelledError):
            # Cancelled by abort() or by the client leaving: already handled.
            self._end(self._outcome)
            return
        reason = _describe(failure)
        _log.warn("upstream request failed: {reason}", reason=reason)
        self._respond_error(
            502, f"the upstream is unreachable: {reason}", "upstream_unreachable", UPSTREAM_ERROR
        )

    def _respond_error(self, code: int, message: str, code_name: str, outcome: str) -> None:
        request = self._request
        if request.channel is None:
            self._end(CLIENT_GONE)
            return
        request.write(json_answer(request, code, self._error_body(code, message, code_name)))
        request.finish()
        self._end(outcome)

    def _error_body(self, status: int, message: str, code: str) -> bytes:
        """The JSON body of an error the proxy makes itself."""
        return openai_error(message, "proxy_error", code)

    def _client_gone(self, failure: Failure) -> None:
        if self._ended:
            return
        if self._outcome == COMPLETE:
            self._outcome = CLIENT_GONE
        self._stop_upstream()
        if not self._streaming:
            self._end(self._outcome)

    def abort(self) -> None:
        """Cut this exchange now: used when the shutdown grace runs out."""
        if self._ended:
            return
        self._outcome = SHUTDOWN
        self._stop_upstream()
        channel = self._request.channel
        transport: Any = channel.transport if channel is not None else None
        if transport is not None:
            transport.abortConnection()

    def _stop_upstream(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.cancel()
        elif self._streaming:
            self.transport.stopProducing()

    # Idle watchdog -----------------------------------------------------

    def _arm_watchdog(self) -> None:
        tick = self._idle_timeout / _WATCH_SLICES
        if self._keepalive is not None:
            tick = min(tick, self._keepalive / _WATCH_SLICES)
        self._watch = self._reactor.callLater(tick, self._check_idle)

    def _keep_alive(self, seconds: float) -> None:
        """Send keep-alives on this event stream after C{seconds} of silence."""
        self._keepalive = seconds
        self._last_ping = self._reactor.seconds()
        if self._watch is not None:
            self._watch.cancel()
            self._arm_watchdog()

    def _check_idle(self) -> None:
        self._watch = None
        if self._ended:
            return
        now = self._reactor.seconds()
        # Keep-alives are ours, not the upstream's: they do not count.
        seen = self._request.sentLength - self._padding
        if seen != self._last_seen:
            self._last_seen = seen
            self._last_change = now
        if now - self._last_change >= self._idle_timeout:
            _log.warn(
                "upstream sent nothing for {seconds:g} s; giving up",
                seconds=self._idle_timeout,
            )
            self._outcome = TIMEOUT
            self._stop_upstream()
            return
        if (
            self._keepalive is not None
            and now - max(self._last_change, self._last_ping) >= self._keepalive
            and self._request.channel is not None
            and self._at_event_boundary()
        ):
            self._last_ping = now
            self._padding += len(KEEPALIVE)
            self._request.write(KEEPALIVE)
        self._arm_watchdog()

    # The end -----------------------------------------------------------

    def _end(self, outcome: str) -> None:
        if self._ended:
            return
        self._ended = True
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        self._inflight.discard(self)
        if self._metrics is not None:
            self._metrics.in_flight_changed()
        now = self._reactor.seconds()
        duration = now - self._started
        ttfb_s = None if self._first_byte is None else round(self._first_byte - self._started, 6)
        request = self._request
        if self._metrics is not None:
            self._metrics.ended(
                request.method,
                request.uri,
                request.code,
                outcome,
                self._bytes_in,
                request.sentLength,
                duration,
            )
        _log.info(
            "{method} {path} {status} {bytes}B ttfb={ttfb} {duration:.3f}s {outcome}"
            " model={model} key={client_key} id={request_id}",
            method=request.method.decode("ascii", "replace"),
            path=_path_for_log(request.uri),
            status=request.code,
            bytes=request.sentLength,
            bytes_in=self._bytes_in,
            ttfb="-" if ttfb_s is None else f"{ttfb_s:.3f}",
            ttfb_s=ttfb_s,
            duration=duration,
            outcome=outcome,
            model=self._model or "-",
            client_key=getattr(request, CLIENT_KEY_ATTRIBUTE, None) or "-",
            request_id=self._request_id,
        )


def is_event_stream(headers: Headers) -> bool:
    """Whether a response is a server-sent event stream."""
    for value in headers.getRawHeaders(b"content-type", ()):
        if value.split(b";")[0].strip().lower() == b"text/event-stream":
            return True
    return False


def upstream_error_text(body: bytes) -> str:
    """The message of an upstream error body: JSON C{error.message}, else the text."""
    payload = parse_json_body(body)
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(payload.get("message"), str):
            return str(payload["message"])
    return body.decode("utf-8", "replace")


class _Discard(Protocol):
    """Reads a response body nobody wants, so its connection is released."""

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: B008
        pass


def _describe(failure: Failure) -> str:
    """A short, secret-free reason for an upstream failure."""
    value = failure.value
    if isinstance(value, (ResponseNeverReceived, ResponseFailed)) and value.reasons:
        return _describe(value.reasons[0])
    text = str(value).strip() or type(value).__name__
    return text.splitlines()[0][:200]


def relay_factory(
    upstream: Upstream,
    tokens: TokenSource,
    reactor: IReactorTime,
    idle_timeout: float,
    inflight: InFlight,
    metrics: ProxyMetrics | None = None,
    options: RelayOptions | None = None,
) -> Callable[[Request], UpstreamRelay]:
    """Bind the shared parts, leaving a function of the request alone."""

    def make(request: Request) -> UpstreamRelay:
        return UpstreamRelay(
            request, upstream, tokens, reactor, idle_timeout, inflight, metrics, options
        )

    return make
