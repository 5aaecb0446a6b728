"""The upstream agent builds one endpoint per origin and reuses it."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.web.client import URI, BrowserLikePolicyForHTTPS
from twisted.web.error import SchemeNotSupported

from copilot_proxy.upstream import EndpointPerOrigin


def _factory() -> EndpointPerOrigin:
    reactor: Any = MemoryReactorClock()
    return EndpointPerOrigin(reactor, BrowserLikePolicyForHTTPS(), 10.0)


def test_same_origin_reuses_one_endpoint() -> None:
    endpoints = _factory()
    first = endpoints.endpointForURI(URI.fromBytes(b"https://api.example.com/chat/completions"))
    again = endpoints.endpointForURI(URI.fromBytes(b"https://api.example.com/models?x=1"))
    assert first is again


def test_other_port_or_scheme_gets_its_own_endpoint() -> None:
    endpoints = _factory()
    tls = endpoints.endpointForURI(URI.fromBytes(b"https://api.example.com/a"))
    plain = endpoints.endpointForURI(URI.fromBytes(b"http://api.example.com/a"))
    other_port = endpoints.endpointForURI(URI.fromBytes(b"https://api.example.com:8443/a"))
    assert len({id(tls), id(plain), id(other_port)}) == 3


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(SchemeNotSupported):
        _factory().endpointForURI(URI.fromBytes(b"ftp://api.example.com/a"))


def test_ip_address_origins_connect_at_once_without_the_resolver() -> None:
    from twisted.internet.protocol import Factory, Protocol

    for url, host in ((b"http://127.0.0.1:9/a", "127.0.0.1"), (b"https://[::1]:9/a", "::1")):
        reactor: Any = MemoryReactorClock()
        endpoints = EndpointPerOrigin(reactor, BrowserLikePolicyForHTTPS(), 10.0)
        endpoints.endpointForURI(URI.fromBytes(url)).connect(Factory.forProtocol(Protocol))
        # Connecting started in the same call: no resolution was waited for.
        assert [(h, p) for h, p, *_ in reactor.tcpClients] == [(host, 9)]
