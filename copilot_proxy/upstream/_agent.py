"""
The connection to the Copilot API: one L{Agent} over one persistent pool.

Proxied traffic does not go through treq on purpose: treq would decode
C{Content-Encoding}, could follow redirects, and shares a cookie jar between
all callers.  The raw agent passes bytes through untouched.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IConsumer, IReactorTime
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer, IResponse
from zope.interface import implementer

from ..wire import ForwardProxy
from ._endpoints import EndpointPerOrigin
from ._honest_client import HonestConnectionFactory

# How many idle upstream connections to keep.  Not a cap on concurrency:
# HTTPConnectionPool opens as many as are needed and caches at most this many
# when they fall idle.  Large enough that a busy proxy almost never reconnects.
IDLE_CONNECTIONS = 256


class QuietPool(HTTPConnectionPool):
    """
    A pool whose connection factories do not log "Starting factory" and
    "Stopping factory" at info level for every connection opened and closed:
    with a busy proxy that is most of the log, and says nothing an operator
    can act on.  (C{_factory} is the pool's documented-in-code hook for the
    factory class; it has been stable since Twisted 12.1.  This is the one
    place that uses it.)
    """

    _factory = HonestConnectionFactory


@implementer(IBodyProducer)
class BufferedBody:
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
        self._pool: HTTPConnectionPool = QuietPool(reactor, persistent=True)  # type: ignore[no-untyped-call]
        self._pool.maxPersistentPerHost = IDLE_CONNECTIONS
        policy = contextFactory if contextFactory is not None else BrowserLikePolicyForHTTPS()
        endpoints = EndpointPerOrigin(
            reactor,
            policy,
            connect_timeout,
            None if forward_proxy is None else (lambda url: forward_proxy),
        )
        self._agent: Agent = Agent.usingEndpointFactory(reactor, endpoints, pool=self._pool)

    def request(
        self,
        method: bytes,
        target: bytes,
        headers: Headers,
        body: bytes,
        base: bytes | None = None,
    ) -> Deferred[IResponse]:
        """
        Send C{method base+target}.  C{target} is the origin-form request
        target (path and query) exactly as the client sent it.

        @param base: another API base than this upstream's (a seat's own).
        """
        producer = BufferedBody(body) if body or method in _BODY_METHODS else None
        return self._agent.request(method, (base or self.base) + target, headers, producer)

    def close(self) -> Deferred[None]:
        """Close idle upstream connections (at shutdown)."""
        closed: Deferred[None] = self._pool.closeCachedConnections()
        return closed
