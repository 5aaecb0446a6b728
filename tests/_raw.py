"""A raw TCP client, for requests no HTTP client library would send."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from ._helpers import timeout


class RawClient(Protocol):
    """Collects everything the server sends; C{closed} fires when it hangs up."""

    def __init__(self) -> None:
        self.answer = b""
        self.closed: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.answer += data

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.closed.callback(None)

    def send(self, data: bytes) -> None:
        transport: Any = self.transport
        transport.write(data)

    @property
    def status(self) -> int:
        return int(self.answer.split(b" ", 2)[1])

    @property
    def body(self) -> bytes:
        return self.answer.partition(b"\r\n\r\n")[2]


async def connect(url: str) -> RawClient:
    port = int(url.rsplit(":", 1)[1])
    client = RawClient()
    await timeout(connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client))
    return client


async def exchange(url: str, head: bytes) -> RawClient:
    """Send C{head} on a fresh connection and wait until the server closes it."""
    client = await connect(url)
    client.send(head)
    await timeout(client.closed, 10)
    return client
