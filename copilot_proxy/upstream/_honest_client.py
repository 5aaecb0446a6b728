"""
Twisted's HTTP/1.1 client protocol, made honest about two things a proxy
must not pass on: this is the one module that reaches into Twisted's client
internals (C{_parser}, its C{connHeaders} and C{bodyDecoder}), and
C{tests/upstream/test_honest_client.py} fails if Twisted changes under it.

1. Headers named in the upstream's C{Connection} header are hop-by-hop
   (RFC 9110 section 7.6.1).  Twisted keeps C{Connection} itself out of
   C{response.headers}, so nobody downstream can see which headers it named;
   here they are removed from the response before anyone sees it.
2. A body delimited by the end of the connection (no length, not chunked)
   is complete only if the connection closed cleanly.  Twisted reports any
   end as C{PotentialDataLoss}, a reset included; here a reset ends the body
   with C{ResponseFailed}, so the client's copy is cut, not completed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress
from twisted.python.failure import Failure
from twisted.web._newclient import HTTP11ClientProtocol
from twisted.web.client import _HTTP11ClientFactory
from twisted.web.http import _DataLoss, _IdentityTransferDecoder
from twisted.web.iweb import IResponse

from ..wire import connection_tokens


class _EndedBadly:
    """Stands in for the body decoder when the connection was reset."""

    def noMoreData(self) -> None:
        raise _DataLoss()


class HonestClientProtocol(HTTP11ClientProtocol):
    """An L{HTTP11ClientProtocol} with the two fixes of this module."""

    def __init__(self, quiescentCallback: Callable[[Any], object] = lambda c: None) -> None:
        super().__init__(quiescentCallback)  # type: ignore[no-untyped-call]

    def request(self, request: object) -> Deferred[IResponse]:
        d: Deferred[IResponse] = super().request(request)  # type: ignore[arg-type]
        parser = self._parser
        if parser is None:
            return d

        def drop_named(response: IResponse) -> IResponse:
            for name in connection_tokens(parser.connHeaders):
                response.headers.removeHeader(name)
            return response

        return d.addCallback(drop_named)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        parser = self._parser
        if parser is not None and not reason.check(ConnectionDone):
            decoder = parser.bodyDecoder
            if isinstance(decoder, _IdentityTransferDecoder) and decoder.contentLength is None:
                parser.bodyDecoder = _EndedBadly()  # type: ignore[assignment]
        super().connectionLost(reason)  # type: ignore[no-untyped-call]


class HonestConnectionFactory(_HTTP11ClientFactory):
    """The pool's connection factory: honest protocols, and quiet."""

    noisy = False

    def buildProtocol(self, addr: IAddress | None) -> HonestClientProtocol:
        return HonestClientProtocol(self._quiescentCallback)
