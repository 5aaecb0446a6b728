"""
Response bytes sent straight to the socket arrive whole and in order, also
when the socket cannot take them all and the rest has to queue.
"""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from copilot_proxy.server import send_now

from .._helpers import timeout, until


class _Sink(Protocol):
    def __init__(self, expected: int) -> None:
        self.received: list[bytes] = []
        self.size = 0
        self.expected = expected
        self.whole: Deferred[None] = Deferred()
        self.paused = False

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)
        self.size += len(data)
        if self.size >= self.expected and not self.whole.called:
            self.whole.callback(None)


class _Source(Protocol):
    made: Deferred[Any]

    def connectionMade(self) -> None:
        self.made.callback(self.transport)

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        pass


async def _connected_pair(reactor: Any, expected: int) -> tuple[Any, _Sink]:
    """A server-side TCP transport on loopback and the client receiving from it."""
    made: Deferred[Any] = Deferred()

    class SourceFactory(Factory):
        def buildProtocol(self, addr: Any) -> _Source:
            source = _Source()
            source.made = made
            return source

    port = reactor.listenTCP(0, SourceFactory(), interface="127.0.0.1")
    sink = _Sink(expected)
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
    await timeout(connectProtocol(endpoint, sink))
    transport = await timeout(made)
    await port.stopListening()
    return transport, sink


def _pieces() -> list[bytes]:
    # Mostly small pieces, and some far larger than a socket buffer, so that
    # some sends are partial and later pieces meet a non-empty queue.
    pieces = []
    for i in range(80):
        size = 3_000_000 if i % 20 == 5 else 200 + i
        pieces.append(bytes([i]) * size)
    return pieces


@pytest_twisted.ensureDeferred
async def test_eager_sends_arrive_whole_and_in_order(reactor: Any) -> None:
    pieces = _pieces()
    expected = b"".join(pieces)
    transport, sink = await _connected_pair(reactor, len(expected))
    try:
        for piece in pieces:
            send_now(transport, piece)
            # Let the reactor run: the client reads and the queue drains a
            # little, so the next piece may find room in the socket while
            # older bytes still wait in the queue.
            await deferLater(reactor, 0, lambda: None)
        await timeout(sink.whole, 30)
        assert b"".join(sink.received) == expected
    finally:
        assert sink.transport is not None
        sink.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_bytes_that_do_not_fit_queue_and_pause_a_registered_producer(
    reactor: Any,
) -> None:
    transport, sink = await _connected_pair(reactor, 8_000_000)
    paused: list[bool] = []

    class Producer:
        def pauseProducing(self) -> None:
            paused.append(True)

        def resumeProducing(self) -> None:
            paused.append(False)

        def stopProducing(self) -> None:
            pass

    try:
        transport.registerProducer(Producer(), True)
        send_now(transport, b"x" * 8_000_000)
        # The socket took what it could; the rest waits in Twisted's queue,
        # which is over its limit, so the producer was paused.
        assert paused == [True]
        await timeout(sink.whole, 30)
        await until(lambda: paused == [True, False])
        assert sink.size == 8_000_000
    finally:
        transport.unregisterProducer()
        assert sink.transport is not None
        sink.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_send_after_peer_closed_loses_connection_quietly(reactor: Any) -> None:
    transport, sink = await _connected_pair(reactor, 1)
    lost: Deferred[None] = Deferred()
    transport.protocol.connectionLost = lambda reason: lost.callback(None)
    assert sink.transport is not None
    sink.transport.loseConnection()
    # Keep writing until the transport notices the peer is gone.
    for _ in range(1000):
        if lost.called:
            break
        send_now(transport, b"y" * 65536)
        await until(lambda: True)
    await timeout(lost, 10)
    assert not transport.connected
