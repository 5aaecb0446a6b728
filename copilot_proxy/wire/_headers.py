"""
Which headers cross the proxy, in each direction.

Pure functions over L{twisted.web.http_headers.Headers}: no I/O, so the rules
are tested without a reactor.  RFC 9110 section 7.6.1 names the hop-by-hop
headers; a proxy must drop them and every header that C{Connection} names.
"""

from __future__ import annotations

from collections.abc import Iterable

from twisted.web.http_headers import Headers

HOP_BY_HOP: frozenset[bytes] = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

# Set by the proxy or by the client library for the upstream connection, never
# copied from the client: Host names the upstream, Authorization carries the
# Copilot token, Content-Length is recomputed from the body we send, Expect was
# already answered by our own server.  x-api-key is the Anthropic SDK's key.
_SET_BY_PROXY: frozenset[bytes] = frozenset(
    {b"host", b"authorization", b"content-length", b"expect", b"x-api-key"}
)


def connection_tokens(headers: Headers) -> set[bytes]:
    """
    The header names listed in C{Connection}, lower-cased: they are hop-by-hop
    for this one message.
    """
    named: set[bytes] = set()
    for value in headers.getRawHeaders(b"connection", ()):
        for token in value.split(b","):
            token = token.strip().lower()
            if token:
                named.add(token)
    return named


def _copy(source: Headers, drop: Iterable[bytes]) -> Headers:
    dropped = set(drop)
    copied = Headers()
    for name, values in source.getAllRawHeaders():
        if name.lower() not in dropped:
            copied.setRawHeaders(name, list(values))
    return copied


def upstream_request_headers(client: Headers, authorization: bytes) -> Headers:
    """
    The headers to send upstream for a client request.

    @param client: the headers the client sent.
    @param authorization: the complete C{Authorization} value to send.
    @return: a new L{Headers}: the client's end-to-end headers, without its
        credentials, plus C{Authorization}.  C{Host} is left for the HTTP
        client to set from the upstream URL.
    """
    headers = _copy(client, HOP_BY_HOP | _SET_BY_PROXY | connection_tokens(client))
    headers.setRawHeaders(b"authorization", [authorization])
    return headers


def client_response_headers(upstream: Headers) -> Iterable[tuple[bytes, list[bytes]]]:
    """
    The upstream response headers to pass to the client, as (name, values).

    Twisted's HTTP client already keeps the framing headers (C{Content-Length},
    C{Transfer-Encoding}, C{Connection}) out of C{IResponse.headers}; this
    drops the remaining hop-by-hop ones so a misbehaving upstream cannot
    inject them.
    """
    drop = HOP_BY_HOP | connection_tokens(upstream)
    return [
        (name, list(values))
        for name, values in upstream.getAllRawHeaders()
        if name.lower() not in drop
    ]


def is_event_stream(headers: Headers) -> bool:
    """Whether a response is a server-sent event stream."""
    for value in headers.getRawHeaders(b"content-type", ()):
        if value.split(b";")[0].strip().lower() == b"text/event-stream":
            return True
    return False
