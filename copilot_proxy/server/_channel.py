"""
Limits on what a client may send before its request is even looked at:
body size, header count and size, the time the request head may take, the
framing and method of the request, and the client key of any request that
carries a body.

Twisted's L{HTTPChannel} reads the whole body into memory (or a temporary
file) before the resource runs, answers an oversized head with a bare 400 or
a silent close, resets its idle timeout on every byte, so a client that
trickles its headers one byte at a time holds a connection forever
(slowloris), ignores C{Transfer-Encoding: identity} (the body is then parsed
as the next request), takes chunk sizes of any length and answers C{OPTIONS
*} itself.  L{LimitedChannel} and L{LimitedRequest} judge each request head
once it is complete, before any body byte is read, answer with JSON errors
in the shape of the client's surface and close the connection, having read
nothing past the limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import RESPONSES, HTTPChannel, datetimeToString

from ..access import KEY_CHALLENGE, KEY_REQUIRED, KeyStore, RequestLimits, check_client_key
from ..web import ProxyRequest
from ..wire import (
    ALLOWED_METHODS,
    BAD_FRAMING,
    NOT_A_FORWARD_PROXY,
    ChunkSizeGuard,
    Surface,
    classify,
    error_for,
    framing_problem,
    method_problem,
)

_log = Logger(namespace="copilot_proxy")


def _ignore(*args: object) -> None:
    pass


def _request_line(line: bytes) -> tuple[bytes, bytes, bytes]:
    """Method, target and version of a request line Twisted has accepted."""
    method, target, version = line.split(b" ")
    return method, target, version


class LimitedRequest(ProxyRequest):
    """
    A request whose body is counted as it arrives: a chunked body over the
    limit is refused the moment it crosses it.  C{OPTIONS *} is answered
    here (the channel refuses every other method on C{*}).
    """

    _body_seen = 0

    def process(self) -> None:
        if self.path != b"*":
            super().process()  # type: ignore[no-untyped-call]
            return
        # Twisted answers '*' before any resource sees it, with its Server
        # header; the proxy says what it serves instead.
        channel: Any = self.channel
        self.site = channel.site
        self.setResponseCode(200)
        headers = self.responseHeaders
        headers.setRawHeaders(b"allow", [ALLOWED_METHODS])
        headers.setRawHeaders(b"content-length", [b"0"])
        headers.setRawHeaders(b"date", [datetimeToString()])
        self.finish()

    def handleContentChunk(self, data: bytes) -> None:
        self._body_seen += len(data)
        channel = self.channel
        if isinstance(channel, LimitedChannel) and self._body_seen > channel.limits.max_body:
            channel.refuse_body()
            return
        super().handleContentChunk(data)  # type: ignore[no-untyped-call]


class LimitedChannel(HTTPChannel):
    """
    An L{HTTPChannel} that enforces L{RequestLimits} on the request head and
    body, and judges each complete head before any body byte is read: its
    framing and C{Host} (400), its method (405), its declared length (413)
    and, for a request that carries a body, its client key (401).  Every
    refusal is a JSON error, then the connection closes.
    """

    limits = RequestLimits()
    #: Called with the status of each refusal made here (metrics).
    on_refused: Callable[[int, str], object] | None = None
    #: The client keys, checked before any body is read (None: no keys).
    keys: KeyStore | None = None
    _head_timer: IDelayedCall | None = None
    _abort_timer: IDelayedCall | None = None
    _awaiting_head = True
    # The head being read: its request line (None until it has come), its
    # header lines and bytes so far.
    _request_line: bytes | None = None
    _header_lines = 0
    _head_bytes = 0
    # The target of the request being read, for the shape of its errors.
    _target: bytes | None = None
    # Watches the chunk sizes of the chunked body being read.
    _chunk_sizes: ChunkSizeGuard | None = None

    def connectionMade(self) -> None:
        # Our own checks fire first and answer 431; Twisted's are a backstop.
        self.MAX_LENGTH = self.limits.max_head_bytes
        self.totalHeadersSize = self.limits.max_head_bytes
        self.maxHeaders = self.limits.max_headers + 1
        super().connectionMade()  # type: ignore[no-untyped-call]

    def dataReceived(self, data: bytes) -> None:
        if self._awaiting_head and self._head_timer is None:
            self._arm_head_timer()
        super().dataReceived(data)  # type: ignore[no-untyped-call]

    def lineReceived(self, line: bytes) -> None:
        if self._head_timer is None:
            self._arm_head_timer()
        self._head_bytes += len(line) + 2
        if self._head_bytes > self.limits.max_head_bytes:
            self._refuse_head(first=self._request_line is None)
            return
        if self._request_line is None:
            # Twisted skips one empty line before a request (old browsers
            # sent one after a POST body).
            if line:
                self._request_line = line
                self._target = line.split(b" ")[1] if line.count(b" ") == 2 else None
        elif line:
            self._header_lines += 1
            if self._header_lines > self.limits.max_headers:
                self._refuse_head(first=False)
                return
        super().lineReceived(line)  # type: ignore[no-untyped-call]

    def lineLengthExceeded(self, line: bytes) -> None:
        self._refuse_head(first=self._request_line is None)

    def allHeadersReceived(self) -> None:
        self._awaiting_head = False
        self._disarm_head_timer()
        assert self._request_line is not None
        method, target, version = _request_line(self._request_line)
        self._request_line = None
        self._header_lines = self._head_bytes = 0
        headers = self.requests[-1].requestHeaders
        framing = framing_problem(
            version,
            headers.getRawHeaders(b"host", []),
            headers.getRawHeaders(b"content-length", []),
            headers.getRawHeaders(b"transfer-encoding", []),
        )
        if framing is not None:
            self._refuse(400, framing[1], framing[0])
            return
        method_refused = method_problem(method)
        if method_refused is not None:
            allow = b"allow: " + ALLOWED_METHODS + b"\r\n"
            self._refuse(405, method_refused[1], method_refused[0], allow)
            return
        if target == b"*" and method != b"OPTIONS":
            # Only OPTIONS may ask about the server as a whole.
            code, message = NOT_A_FORWARD_PROXY
            self._refuse(400, message, code)
            return
        length = self.length
        if length is not None and length > self.limits.max_body:
            self.refuse_body(check_client_key(self.keys, headers).name)
            return
        if length != 0 and not check_client_key(self.keys, headers).allowed:
            # A body from a client without a valid key is never read, however
            # it is framed: the 401 goes out now and the connection closes.
            # (A request without a body goes on to the access gate, which
            # answers the same 401.)
            self._refuse(
                401,
                KEY_REQUIRED,
                "invalid_api_key",
                b"www-authenticate: " + KEY_CHALLENGE + b"\r\n",
            )
            return
        self._chunk_sizes = ChunkSizeGuard() if length is None else None
        super().allHeadersReceived()  # type: ignore[no-untyped-call]

    def rawDataReceived(self, data: bytes) -> None:
        guard = self._chunk_sizes
        if guard is not None:
            if not guard.feed(data):
                self._chunk_sizes = None
                code, message = BAD_FRAMING
                self._refuse(400, message, code)
                return
            if guard.done:
                self._chunk_sizes = None
        super().rawDataReceived(data)

    def requestDone(self, request: Any) -> None:
        self._awaiting_head = True
        self._target = None
        self._chunk_sizes = None
        super().requestDone(request)  # type: ignore[no-untyped-call]

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self._disarm_head_timer()
        if self._abort_timer is not None and self._abort_timer.active():
            self._abort_timer.cancel()
        self._abort_timer = None
        super().connectionLost(reason)  # type: ignore[no-untyped-call]

    # Refusals ----------------------------------------------------------

    def _respondToBadRequestAndDisconnect(self) -> None:
        # Twisted answers every malformed request (a bad request line, a
        # header without a colon, a bad Content-Length or chunk size) here,
        # with a bare 400 and no body; clients get the JSON error shape too.
        self._refuse(400, "the request is not valid HTTP/1.1", "bad_request")

    def refuse_body(self, who: str | None = None) -> None:
        """
        Answer 413 and close: the body goes past C{max_body}.

        @param who: the name of the client key the request showed, if known.
        """
        limit = self.limits.max_body
        self._refuse(
            413,
            f"the request body is larger than this proxy accepts ({limit} bytes)",
            "request_too_large",
            who=who,
        )

    def _refuse_head(self, first: bool) -> None:
        if first:
            self._refuse(414, "the request target is too long", "uri_too_long")
        else:
            self._refuse(
                431,
                "the request headers are too many or too large "
                f"(at most {self.limits.max_headers} headers, "
                f"{self.limits.max_head_bytes} bytes)",
                "headers_too_large",
            )

    def _head_too_slow(self) -> None:
        self._head_timer = None
        self._refuse(
            408,
            f"the request headers did not arrive within {self.limits.head_timeout:g} s",
            "request_timeout",
        )

    def _refuse(
        self, status: int, message: str, code: str, extra: bytes = b"", who: str | None = None
    ) -> None:
        self._disarm_head_timer()
        transport: Any = self.transport
        peer = transport.getPeer() if transport is not None else None
        if self.on_refused is not None:
            # Counted as the key's, or else the address's (as the ledger
            # counts a client without a key).
            if who is None:
                host = getattr(peer, "host", None)
                who = f"addr:{host}" if isinstance(host, str) else "addr:local"
            self.on_refused(status, who)
        surface = Surface.OPENAI if self._target is None else classify(self._target)
        body = error_for(surface, status, message, "invalid_request_error", code)
        _log.info(
            "refused a request from {peer}: {status} {code}", peer=peer, status=status, code=code
        )
        head = b"HTTP/1.1 %d %s\r\n" % (status, RESPONSES.get(status, b"Error"))
        head += b"content-type: application/json\r\ncontent-length: %d\r\n" % (len(body),)
        head += extra + b"connection: close\r\n\r\n"
        if transport is not None:
            transport.write(head + body)
        # Nothing more is read or parsed from this connection (closing it
        # stops reading the socket too), and a head refused here is never
        # taken for a request without a body by Twisted's parser.
        self.dataReceived = self.lineReceived = self.rawDataReceived = _ignore  # type: ignore[method-assign,assignment]
        self.persistent = False
        self.length = None
        # Close once the answer is flushed, and abort if the client will not
        # let it be (a slowloris does not read either).
        call: Any = self.callLater
        self._abort_timer = call(self.abortTimeout, self._abort)
        self.loseConnection()  # type: ignore[no-untyped-call]

    def _abort(self) -> None:
        self._abort_timer = None
        transport: Any = self.transport
        if transport is not None:
            transport.abortConnection()

    # The head deadline -------------------------------------------------

    def _arm_head_timer(self) -> None:
        call: Any = self.callLater
        self._head_timer = call(self.limits.head_timeout, self._head_too_slow)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            if self._head_timer.active():
                self._head_timer.cancel()
            self._head_timer = None
