"""
Upstream connections through a corporate HTTP proxy, as a C{CONNECT} tunnel.

Twisted's L{ProxyAgent} only speaks plain HTTP to a proxy, which would hand
the proxy the Copilot token in clear.  L{TunnelEndpoint} instead connects to
the proxy, asks C{CONNECT host:port}, waits for a 2xx, and then starts TLS
inside the tunnel, verified against the upstream's own hostname: the proxy
sees only ciphertext.  L{copilot_proxy.upstream.EndpointPerOrigin} plugs it
into an L{Agent} through C{Agent.usingEndpointFactory}, so pooling, timeouts
and cancellation work as for a direct connection.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IProtocol, IProtocolFactory, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from ..wire import ForwardProxy

# A proxy's answer to CONNECT is a status line and a few headers; anything
# longer is not an HTTP proxy talking.
_MAX_ANSWER = 64 * 1024


class TunnelError(Exception):
    """
    The proxy did not open the tunnel.  The message names the proxy and its
    answer, never credentials; the relay shows it in its 502 body.
    """


class _TunnelProtocol(Protocol):
    """
    Speaks CONNECT to the proxy, then becomes a transparent pass-through to
    the protocol the agent wanted, over TLS when the target is https.
    """

    def __init__(self, endpoint: TunnelEndpoint, factory: IProtocolFactory) -> None:
        self._endpoint = endpoint
        self._factory = factory
        self._answer = b""
        self._inner: IProtocol | None = None
        self.ready: Deferred[IProtocol] = Deferred(self._cancel)

    def _cancel(self, d: Deferred[IProtocol]) -> None:
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def connectionMade(self) -> None:
        e = self._endpoint
        authority = b"%s:%d" % (e.host, e.port)
        lines = [b"CONNECT " + authority + b" HTTP/1.1", b"Host: " + authority]
        if e.proxy.authorization is not None:
            value = e.proxy.authorization.reveal().encode("ascii")
            lines.append(b"Proxy-Authorization: " + value)
        self.transport.write(b"\r\n".join(lines) + b"\r\n\r\n")  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        # Replaced by the inner protocol's dataReceived once the tunnel is up.
        self._answer += data
        head, found, rest = self._answer.partition(b"\r\n\r\n")
        if not found:
            if len(self._answer) > _MAX_ANSWER:
                self._refuse("an over-long answer to CONNECT")
            return
        status_line = head.split(b"\r\n", 1)[0]
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].startswith(b"2"):
            self._refuse(status_line[:200].decode("latin-1"))
            return
        self._answer = b""
        self._open(rest)

    def _refuse(self, answer: str) -> None:
        proxy = self._endpoint.proxy
        transport: Any = self.transport
        transport.abortConnection()
        if not self.ready.called:
            self.ready.errback(
                TunnelError(
                    f"the proxy {proxy.host}:{proxy.port} ({proxy.origin}) "
                    f"refused the tunnel: {answer}"
                )
            )

    def _open(self, early: bytes) -> None:
        transport: Any = self.transport
        if self._endpoint.tls is not None:
            transport.startTLS(self._endpoint.tls)
        inner = self._factory.buildProtocol(transport.getPeer())
        if inner is None:
            transport.loseConnection()
            self.ready.errback(TunnelError("the connection was refused by its own factory"))
            return
        self._inner = inner
        # From now on every byte goes straight to the inner protocol.
        self.dataReceived = inner.dataReceived  # type: ignore[method-assign]
        inner.makeConnection(transport)
        self.ready.callback(inner)
        if early:
            inner.dataReceived(early)

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:  # noqa: B008
        if self._inner is not None:
            self._inner.connectionLost(reason)
        elif not self.ready.called:
            proxy = self._endpoint.proxy
            self.ready.errback(
                TunnelError(
                    f"the proxy {proxy.host}:{proxy.port} ({proxy.origin}) closed the "
                    "connection before opening the tunnel"
                )
            )


@implementer(IStreamClientEndpoint)
class TunnelEndpoint:
    """
    Connects to C{host:port} through a C{CONNECT} tunnel of C{proxy}.

    @ivar tls: the TLS connection creator for the target (verifying its
        hostname), or L{None} for a plain connection inside the tunnel.
    """

    def __init__(
        self,
        reactor: Any,
        proxy: ForwardProxy,
        host: bytes,
        port: int,
        tls: Any,
        timeout: float,
    ) -> None:
        self.proxy = proxy
        self.host = host
        self.port = port
        self.tls = tls
        self._to_proxy = HostnameEndpoint(
            reactor, proxy.host.encode("idna"), proxy.port, timeout=timeout
        )

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        tunnel: list[_TunnelProtocol] = []

        def build() -> _TunnelProtocol:
            protocol = _TunnelProtocol(self, protocolFactory)
            tunnel.append(protocol)
            return protocol

        connecting = self._to_proxy.connect(Factory.forProtocol(build))

        def cancel(d: Deferred[IProtocol]) -> None:
            if tunnel:
                tunnel[0].ready.cancel()
            else:
                connecting.cancel()

        result: Deferred[IProtocol] = Deferred(cancel)

        def connected(protocol: IProtocol) -> Deferred[IProtocol]:
            assert isinstance(protocol, _TunnelProtocol)
            return protocol.ready

        connecting.addCallback(connected).chainDeferred(result)
        return result
