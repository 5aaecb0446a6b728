"""
The connection to the Copilot API: one L{Agent} over one persistent pool.

Proxied traffic does not go through treq on purpose: treq would decode
C{Content-Encoding}, could follow redirects, and shares a cookie jar between
all callers.  The raw agent passes bytes through untouched.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import IConsumer, IReactorTime, IStreamClientEndpoint
from twisted.web.client import (
    URI,
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    _HTTP11ClientFactory,
)
from twisted.web.error import SchemeNotSupported
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer, IPolicyForHTTPS, IResponse
from zope.interface import implementer

from ..wire import ForwardProxy
from ._tunnel import ProxiedEndpoints

# How many idle upstream connections to keep.  Not a cap on concurrency:
# HTTPConnectionPool opens as many as are needed and caches at most this many
# when they fall idle.  Large enough that a busy proxy almost never reconnects.
IDLE_CONNECTIONS = 256


class _QuietConnectionFactory(_HTTP11ClientFactory):
    noisy = False


class _QuietPool(HTTPConnectionPool):
    """
    A pool whose connection factories do not log "Starting factory" and
    "Stopping factory" at info level for every upstream connection opened
    and closed: with a busy proxy that is most of the log, and says nothing
    an operator can act on.  (C{_factory} is the pool's documented-in-code
    hook for the factory class; it has been stable since Twisted 12.1.)
    """

    _factory = _QuietConnectionFactory


@implementer(IBodyProducer)
class _BufferedBody:
    """
    A request body that is already in memory, written in one piece.

    Twisted's server has read the whole client body before the resource runs;
    writing it at once, with a known length, avoids the cooperative, chunked
    reading of C{FileBodyProducer}.
    """

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        consumer.write(self._body)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


@implementer(IAgentEndpointFactory)
class _EndpointPerOrigin:
    """
    One endpoint per upstream origin, built once.

    L{Agent}'s own factory builds a new endpoint for every request, and
    building one costs an IDNA encoding of the host name: measurable per
    request, for an answer that never changes.  The proxy talks to one
    origin, so the cache holds one entry.
    """

    def __init__(self, reactor: Any, policy: IPolicyForHTTPS, connect_timeout: float) -> None:
        self._reactor = reactor
        self._policy = policy
        self._connect_timeout = connect_timeout
        self._endpoints: dict[tuple[bytes, bytes, int], IStreamClientEndpoint] = {}

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        key = (uri.scheme, uri.host, uri.port)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            if uri.scheme not in (b"http", b"https"):
                raise SchemeNotSupported(f"unsupported scheme: {uri.scheme!r}")
            endpoint = _connect_to(self._reactor, uri.host, uri.port, self._connect_timeout)
            if uri.scheme == b"https":
                creator = self._policy.creatorForNetloc(uri.host, uri.port)
                endpoint = wrapClientTLS(creator, endpoint)
            self._endpoints[key] = endpoint
        return endpoint


def _connect_to(reactor: Any, host: bytes, port: int, timeout: float) -> IStreamClientEndpoint:
    """
    A TCP endpoint for C{host}: straight to it when it is an IP address.

    L{HostnameEndpoint} resolves even an IP address through the threaded
    resolver, once per new connection: a thread hand-off each time a burst of
    streams opens new upstream connections, for an answer known in advance.
    """
    text = host.decode("ascii")
    if isIPAddress(text):
        return TCP4ClientEndpoint(reactor, text, port, timeout=timeout)
    if isIPv6Address(text):
        return TCP6ClientEndpoint(reactor, text, port, timeout=timeout)
    return HostnameEndpoint(reactor, host, port, timeout=timeout)


# Methods whose requests carry a body even when it is empty: an upstream
# expects "Content-Length: 0" on an empty POST rather than no framing at all.
_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})


class Upstream:
    """
    Sends requests to one upstream base URL over reused connections.

    @ivar base: the upstream base URL; request targets are appended to it.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        base: bytes,
        connect_timeout: float,
        contextFactory: Any = None,
        forward_proxy: ForwardProxy | None = None,
    ) -> None:
        """
        @param contextFactory: how upstream TLS is verified (an
            L{IPolicyForHTTPS}); L{None} for the platform's trust store.
        @param forward_proxy: an HTTP proxy to tunnel every connection
            through (C{HTTPS_PROXY}), or L{None} to connect directly.
        """
        self.base = base
        self._pool: HTTPConnectionPool = _QuietPool(reactor, persistent=True)  # type: ignore[no-untyped-call]
        self._pool.maxPersistentPerHost = IDLE_CONNECTIONS
        policy = contextFactory if contextFactory is not None else BrowserLikePolicyForHTTPS()
        endpoints: IAgentEndpointFactory
        if forward_proxy is not None:
            endpoints = ProxiedEndpoints(
                reactor, lambda url: forward_proxy, policy, connect_timeout
            )
        else:
            endpoints = _EndpointPerOrigin(reactor, policy, connect_timeout)
        self._agent: Agent = Agent.usingEndpointFactory(reactor, endpoints, pool=self._pool)

    def request(
        self, method: bytes, target: bytes, headers: Headers, body: bytes
    ) -> Deferred[IResponse]:
        """
        Send C{method base+target}.  C{target} is the origin-form request
        target (path and query) exactly as the client sent it.
        """
        producer = _BufferedBody(body) if body or method in _BODY_METHODS else None
        return self._agent.request(method, self.base + target, headers, producer)

    def close(self) -> Deferred[None]:
        """Close idle upstream connections (at shutdown)."""
        closed: Deferred[None] = self._pool.closeCachedConnections()
        return closed
