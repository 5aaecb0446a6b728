"""
Where an L{Agent} connects for each origin: straight to it, or through a
C{CONNECT} tunnel of the forward proxy named for it; each endpoint built once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.web.client import URI
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgentEndpointFactory, IPolicyForHTTPS
from zope.interface import implementer

from ..wire import ForwardProxy
from ._tunnel import TunnelEndpoint


@implementer(IAgentEndpointFactory)
class EndpointPerOrigin:
    """
    One endpoint per origin (scheme, host, port), built once: a direct
    connection, or a tunnel through the proxy that C{proxy_for} names for
    the origin.

    L{Agent}'s own factory builds a new endpoint for every request, and
    building one costs an IDNA encoding of the host name: measurable per
    request, for an answer that never changes.  The proxy talks to one or
    two origins, so the cache stays that small.
    """

    def __init__(
        self,
        reactor: Any,
        policy: IPolicyForHTTPS,
        connect_timeout: float,
        proxy_for: Callable[[str], ForwardProxy | None] | None = None,
    ) -> None:
        """
        @param policy: how TLS to the target is verified, tunnel or not.
        @param proxy_for: the proxy for a URL (C{scheme://host:port}), or
            L{None} to connect directly; when not given, every origin is
            connected to directly.
        """
        self._reactor = reactor
        self._policy = policy
        self._connect_timeout = connect_timeout
        self._proxy_for = proxy_for
        self._endpoints: dict[tuple[bytes, bytes, int], IStreamClientEndpoint] = {}

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        key = (uri.scheme, uri.host, uri.port)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            endpoint = self._endpoints[key] = self._endpoint(uri)
        return endpoint

    def _endpoint(self, uri: URI) -> IStreamClientEndpoint:
        if uri.scheme not in (b"http", b"https"):
            raise SchemeNotSupported(f"unsupported scheme: {uri.scheme!r}")
        tls = None
        if uri.scheme == b"https":
            tls = self._policy.creatorForNetloc(uri.host, uri.port)
        proxy = self._proxy(uri)
        if proxy is not None:
            return TunnelEndpoint(
                self._reactor, proxy, uri.host, uri.port, tls, self._connect_timeout
            )
        direct = _connect_to(self._reactor, uri.host, uri.port, self._connect_timeout)
        return direct if tls is None else wrapClientTLS(tls, direct)

    def _proxy(self, uri: URI) -> ForwardProxy | None:
        if self._proxy_for is None:
            return None
        host = uri.host.decode("ascii")
        netloc = f"[{host}]" if ":" in host else host
        return self._proxy_for(f"{uri.scheme.decode()}://{netloc}:{uri.port}")


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
