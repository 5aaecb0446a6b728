"""
The one place that reaches into Twisted's HTTP client internals
(copilot_proxy.upstream._honest_client), in memory: these fail if Twisted
changes the parts it relies on.
"""

from __future__ import annotations

from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web._newclient import Request
from twisted.web.client import ResponseFailed
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

from copilot_proxy.upstream import HonestClientProtocol

from .._helpers import Collector


def _connected() -> tuple[HonestClientProtocol, StringTransport, list[IResponse]]:
    protocol = HonestClientProtocol()
    transport = StringTransport()
    protocol.makeConnection(transport)  # type: ignore[no-untyped-call]
    responses: list[IResponse] = []
    request = Request(b"GET", b"/models", Headers({b"host": [b"upstream"]}), None)
    protocol.request(request).addCallback(responses.append)
    return protocol, transport, responses


def test_headers_named_in_connection_are_removed_from_the_response() -> None:
    protocol, _, responses = _connected()
    protocol.dataReceived(
        b"HTTP/1.1 200 OK\r\nConnection: x-hop\r\nX-Hop: 1\r\nX-Kept: 2\r\n"
        b"Content-Length: 0\r\n\r\n"
    )  # type: ignore[no-untyped-call]
    (response,) = responses
    assert not response.headers.hasHeader(b"x-hop")
    assert response.headers.getRawHeaders(b"x-kept") == [b"2"]


def _close_delimited(reason: Failure) -> Failure | None:
    protocol, _, responses = _connected()
    protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1\n\n")  # type: ignore[no-untyped-call]
    (response,) = responses
    body = Collector()
    response.deliverBody(body)
    protocol.connectionLost(reason)
    assert body.body == b"data: 1\n\n"
    return body.reason


def test_a_close_delimited_body_cut_by_a_reset_fails() -> None:
    reason = _close_delimited(Failure(ConnectionLost("reset")))
    assert reason is not None and reason.check(ResponseFailed)


def test_a_close_delimited_body_ended_cleanly_is_potential_data_loss_as_before() -> None:
    reason = _close_delimited(Failure(ConnectionDone()))
    assert reason is not None and reason.check(PotentialDataLoss)
