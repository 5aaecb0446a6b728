"""A loopback HTTP CONNECT proxy, as a corporate proxy would behave."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure


@dataclass
class Tunnel:
    """One CONNECT request and what went through the tunnel."""

    target: str
    headers: dict[str, str]
    client_bytes: bytearray = field(default_factory=bytearray)


class _Upstream(Protocol):
    def __init__(self, client: _ProxyProtocol) -> None:
        self.client = client

    def dataReceived(self, data: bytes) -> None:
        self.client.transport.write(data)  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:  # noqa: B008
        if self.client.transport is not None:
            self.client.transport.loseConnection()


class _ProxyProtocol(Protocol):
    def __init__(self, proxy: ConnectProxy) -> None:
        self.proxy = proxy
        self.head = b""
        self.tunnel: Tunnel | None = None
        self.upstream: _Upstream | None = None

    def dataReceived(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.client_bytes += data
            if self.upstream is not None and self.upstream.transport is not None:
                self.upstream.transport.write(data)
            return
        self.head += data
        head, found, rest = self.head.partition(b"\r\n\r\n")
        if not found:
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self.proxy.requests.append((method, target, headers))
        transport: Any = self.transport
        if method != "CONNECT":
            transport.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            transport.loseConnection()
            return
        expected = self.proxy.require_authorization
        if expected is not None and headers.get("proxy-authorization") != expected:
            transport.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="corp"\r\nContent-Length: 0\r\n\r\n'
            )
            transport.loseConnection()
            return
        tunnel = Tunnel(target, headers)
        tunnel.client_bytes += rest
        self.tunnel = tunnel
        self.proxy.tunnels.append(tunnel)
        host, _, port = target.rpartition(":")
        host = "127.0.0.1" if host == "localhost" else host
        endpoint = TCP4ClientEndpoint(self.proxy.reactor, host, int(port))
        d = connectProtocol(endpoint, _Upstream(self))

        def connected(upstream: _Upstream) -> None:
            self.upstream = upstream
            transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if tunnel.client_bytes:
                upstream.transport.write(bytes(tunnel.client_bytes))  # type: ignore[union-attr]

        def failed(reason: Failure) -> None:
            transport.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            transport.loseConnection()

        d.addCallbacks(connected, failed)

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:  # noqa: B008
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.loseConnection()


class ConnectProxy:
    """
    Serves C{CONNECT host:port} by splicing to that address (C{localhost}
    meaning 127.0.0.1); refuses every other method with 405.

    @ivar requests: every request line seen, as (method, target, headers).
    @ivar tunnels: the tunnels opened, with the bytes the client sent in them.
    @ivar require_authorization: when set, the C{Proxy-Authorization} value
        required (407 otherwise).
    """

    def __init__(self, reactor: Any, require_authorization: str | None = None) -> None:
        self.reactor = reactor
        self.require_authorization = require_authorization
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.tunnels: list[Tunnel] = []
        self.factory = Factory.forProtocol(lambda: _ProxyProtocol(self))
