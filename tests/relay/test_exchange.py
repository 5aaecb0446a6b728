"""
The relay core in memory: an L{Exchange} between a real HTTP channel on a
L{StringTransport} and an upstream of the test's own, on a L{Clock}.
"""

from __future__ import annotations

import json

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import HTTPChannel, PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IResponse
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from zope.interface import implementer

from copilot_proxy.relay import (
    PASSTHROUGH,
    Exchange,
    InFlight,
    OpenAIPassthrough,
    RelayContext,
    RelayOptions,
    RelayStrategy,
    UpstreamCall,
)
from copilot_proxy.tokens import StaticToken
from copilot_proxy.web import ProxyRequest
from copilot_proxy.wire import BodyFacts, Secret

_TOKEN = "tid=first;exp=9999999999"
_FRESH = "tid=fresh;exp=9999999999"


class _BodyTransport:
    """The push producer Twisted hands a response body protocol."""

    def __init__(self) -> None:
        self.state = "producing"

    def pauseProducing(self) -> None:
        self.state = "paused"

    def resumeProducing(self) -> None:
        self.state = "producing"

    def stopProducing(self) -> None:
        self.state = "stopped"


@implementer(IResponse)
class _Response:
    """An upstream response whose body the test feeds by hand."""

    version = (b"HTTP", 1, 1)
    previousResponse = None
    request = None

    def __init__(self, code: int, headers: dict[bytes, bytes], length: object = UNKNOWN_LENGTH):
        self.code = code
        self.phrase = b"OK" if code == 200 else b"Status"
        self.headers = Headers({k: [v] for k, v in headers.items()})
        self.length = length
        self.protocol: object = None
        self.transport = _BodyTransport()

    def deliverBody(self, protocol: object) -> None:
        self.protocol = protocol
        protocol.makeConnection(self.transport)  # type: ignore[attr-defined]

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)  # type: ignore[attr-defined]

    def end(self, reason: Failure | None = None) -> None:
        self.protocol.connectionLost(reason or Failure(ResponseDone()))  # type: ignore[attr-defined]

    def setPreviousResponse(self, response: IResponse) -> None:
        pass


class _Upstream:
    """Records each request; the test answers them in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, bytes, Headers, bytes]] = []
        self.pending: list[Deferred[IResponse]] = []

    def request(
        self,
        method: bytes,
        target: bytes,
        headers: Headers,
        body: bytes,
        base: bytes | None = None,
    ) -> Deferred[IResponse]:
        self.calls.append((method, target, headers, body))
        d: Deferred[IResponse] = Deferred()
        self.pending.append(d)
        return d

    def answer(self, response: _Response) -> None:
        self.pending.pop(0).callback(response)


class _Tokens(StaticToken):
    """A static token that has a fresher one to give once, after a 401."""

    def __init__(self) -> None:
        super().__init__(Secret(_TOKEN))
        self.renewals = 0

    def refreshed_after(self, stale: bytes) -> Deferred[bytes | None]:
        self.renewals += 1
        return succeed(b"Bearer " + _FRESH.encode())


class _Harness:
    """One channel, one site whose resource starts an exchange per request."""

    def __init__(
        self,
        idle_timeout: float = 60.0,
        keepalive: float | None = None,
        strategy: RelayStrategy = PASSTHROUGH,
    ) -> None:
        self.clock = Clock()
        self.upstream = _Upstream()
        self.tokens = _Tokens()
        self.inflight = InFlight()
        self.exchanges: list[Exchange] = []
        self.context = RelayContext(
            self.upstream,
            self.tokens,
            self.clock,
            idle_timeout,
            self.inflight,
            options=RelayOptions(sse_keepalive=keepalive),
        )
        harness = self

        class _Start(Resource):
            isLeaf = True

            def render(self, request: ProxyRequest) -> int:
                exchange = Exchange(request, harness.context, strategy)
                harness.exchanges.append(exchange)
                exchange.start()
                return NOT_DONE_YET

        site = Site(_Start(), reactor=self.clock)  # type: ignore[no-untyped-call]
        self.channel = HTTPChannel()
        self.channel.site = site  # type: ignore[attr-defined]
        self.channel.requestFactory = ProxyRequest
        self.channel.callLater = self.clock.callLater  # type: ignore[method-assign, assignment]
        self.channel.timeOut = None
        self.client = StringTransport()
        self.channel.makeConnection(self.client)

    def send(self, body: bytes = b'{"model":"gpt-4o","stream":true}') -> None:
        self.channel.dataReceived(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )

    def answered(self) -> bytes:
        return bytes(self.client.value())


def _stream_response() -> _Response:
    return _Response(200, {b"content-type": b"text/event-stream"})


def test_each_chunk_goes_to_the_client_as_it_is_and_the_hot_path_is_request_write() -> None:
    h = _Harness()
    h.send()
    method, target, headers, body = h.upstream.calls[0]
    assert (method, target) == (b"POST", b"/chat/completions")
    assert headers.getRawHeaders(b"authorization") == [b"Bearer " + _TOKEN.encode()]
    response = _stream_response()
    h.upstream.answer(response)
    exchange = h.exchanges[0]
    request = h.channel.requests[0]
    # No keep-alives asked for: the body protocol's dataReceived is the
    # client request's write itself, not a function of ours.
    assert exchange.dataReceived == request.write
    response.send(b"data: one\n\n")
    response.send(b"data: two\n\n")
    assert h.answered().endswith(b"data: one\n\n\r\nb\r\ndata: two\n\n\r\n")
    response.end()
    assert h.answered().endswith(b"0\r\n\r\n")
    assert len(h.inflight) == 0


def test_a_401_is_replayed_once_with_a_fresher_token_and_the_client_never_sees_it() -> None:
    h = _Harness()
    h.send()
    refused = _Response(401, {b"content-type": b"application/json"}, 2)
    h.upstream.answer(refused)
    assert h.tokens.renewals == 1
    assert len(h.upstream.calls) == 2
    second = h.upstream.calls[1][2]
    assert second.getRawHeaders(b"authorization") == [b"Bearer " + _FRESH.encode()]
    assert h.upstream.calls[1][3] == h.upstream.calls[0][3]
    ok = _Response(200, {b"content-type": b"application/json"}, 2)
    h.upstream.answer(ok)
    ok.send(b"{}")
    ok.end()
    assert h.answered().startswith(b"HTTP/1.1 200 ")
    assert b"401" not in h.answered().split(b"\r\n")[0]


def test_a_second_401_goes_to_the_client() -> None:
    h = _Harness()
    h.send()
    h.upstream.answer(_Response(401, {}, 0))
    second = _Response(401, {b"content-type": b"application/json"}, 2)
    h.upstream.answer(second)
    second.send(b"{}")
    second.end()
    assert h.answered().startswith(b"HTTP/1.1 401 ")
    assert h.tokens.renewals == 1


def test_an_upstream_silent_before_its_headers_gets_504_after_the_idle_timeout() -> None:
    h = _Harness(idle_timeout=10.0)
    h.send()
    h.clock.advance(9.0)
    assert h.answered() == b""
    for _ in range(3):
        h.clock.advance(2.5)
    head, _, body = h.answered().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 504 ")
    assert json.loads(body)["error"]["code"] == "upstream_timeout"
    assert len(h.inflight) == 0
    assert h.clock.getDelayedCalls() == []


def test_keepalives_go_only_between_events_and_do_not_count_as_upstream_progress() -> None:
    h = _Harness(idle_timeout=100.0, keepalive=4.0)
    h.send()
    response = _stream_response()
    h.upstream.answer(response)
    response.send(b"data: par")
    for _ in range(8):
        h.clock.advance(1.0)
    # Mid-event: no keep-alive may go out.
    assert b"keep-alive" not in h.answered()
    response.send(b"tial\n\n")
    for _ in range(8):
        h.clock.advance(1.0)
    assert b": keep-alive\n\n" in h.answered()
    # Only keep-alives for 100 s: still idle as far as the upstream goes.
    for _ in range(120):
        h.clock.advance(1.0)
    assert response.transport.state == "stopped"


def test_a_client_that_leaves_stops_the_upstream_at_once() -> None:
    h = _Harness()
    h.send()
    response = _stream_response()
    h.upstream.answer(response)
    response.send(b"data: one\n\n")
    h.channel.connectionLost(Failure(ConnectionError("gone")))
    assert response.transport.state == "stopped"
    response.end(Failure(ConnectionError("aborted")))
    assert len(h.inflight) == 0


def test_a_client_that_leaves_before_the_answer_cancels_the_upstream_request() -> None:
    h = _Harness()
    h.send()
    pending = h.upstream.pending[0]
    h.channel.connectionLost(Failure(ConnectionError("gone")))
    assert pending.called
    assert len(h.inflight) == 0
    assert h.clock.getDelayedCalls() == []


def test_an_upstream_cut_mid_body_is_never_finished_as_complete() -> None:
    h = _Harness()
    h.send()
    response = _stream_response()
    h.upstream.answer(response)
    response.send(b"data: one\n\n")
    response.end(Failure(ConnectionError("reset")))
    assert not h.answered().endswith(b"0\r\n\r\n")
    assert h.client.disconnecting


def test_a_slow_client_pauses_the_upstream_read() -> None:
    h = _Harness()
    h.send()
    response = _stream_response()
    h.upstream.answer(response)
    request = h.channel.requests[0]
    assert request.producer is response.transport
    h.channel.pauseProducing()
    assert response.transport.state == "paused"
    h.channel.resumeProducing()
    assert response.transport.state == "producing"


def test_potential_data_loss_without_length_still_finishes() -> None:
    h = _Harness()
    h.send()
    response = _Response(200, {b"content-type": b"application/json"})
    h.upstream.answer(response)
    response.send(b"{}")
    response.end(Failure(PotentialDataLoss()))
    assert h.answered().endswith(b"0\r\n\r\n")


def test_abort_cuts_the_client_and_the_upstream() -> None:
    h = _Harness()
    h.send()
    response = _stream_response()
    h.upstream.answer(response)
    h.inflight.abort_all()
    assert response.transport.state == "stopped"
    assert h.client.disconnected or h.client.disconnecting


class _Rerouting(OpenAIPassthrough):
    """Sends a refused request once more, to another target."""

    reroutes = True

    def __init__(self) -> None:
        self.seen: list[tuple[int, bytes]] = []

    def reroute(self, status: int, body: bytes) -> UpstreamCall | None:
        self.seen.append((status, body))
        if b"endpoint" not in body:
            return None
        return UpstreamCall(b"/responses", b"{}", BodyFacts(), "gpt-5.4")


def test_an_endpoint_refusal_is_sent_once_more_elsewhere_before_the_client_sees_it() -> None:
    strategy = _Rerouting()
    h = _Harness(strategy=strategy)
    h.send()
    refusal = b'{"error":{"message":"not accessible via the /chat/completions endpoint"}}'
    refused = _Response(400, {b"content-type": b"application/json"}, len(refusal))
    h.upstream.answer(refused)
    refused.send(refusal)
    refused.end()
    assert strategy.seen == [(400, refusal)]
    assert [call[1] for call in h.upstream.calls] == [b"/chat/completions", b"/responses"]
    ok = _Response(200, {b"content-type": b"application/json"}, 2)
    h.upstream.answer(ok)
    ok.send(b"{}")
    ok.end()
    assert h.answered().startswith(b"HTTP/1.1 200 ")


def test_a_refusal_the_strategy_keeps_reaches_the_client_as_it_came() -> None:
    strategy = _Rerouting()
    h = _Harness(strategy=strategy)
    h.send()
    refusal = b'{"error":{"message":"bad request"}}'
    refused = _Response(400, {b"content-type": b"application/json"}, len(refusal))
    h.upstream.answer(refused)
    refused.send(refusal)
    refused.end()
    assert len(h.upstream.calls) == 1
    head, _, body = h.answered().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert body == refusal
    assert len(h.inflight) == 0
