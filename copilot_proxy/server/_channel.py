"""
Limits on what a client may send before its request is even looked at:
body size, header count and size, and the time the request head may take.

Twisted's L{HTTPChannel} reads the whole body into memory (or a temporary
file) before the resource runs, answers an oversized head with a bare 400 or
a silent close, and resets its idle timeout on every byte, so a client that
trickles its headers one byte at a time holds a connection forever
(slowloris).  L{LimitedChannel} and L{LimitedRequest} answer these with JSON
errors and close the connection, having read nothing past the limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import RESPONSES, HTTPChannel

from ..access import KEY_CHALLENGE, KEY_REQUIRED, KeyStore, RequestLimits, check_client_key
from ..web import ProxyRequest
from ..wire import openai_error

# Declared request bodies larger than this are only read from clients that
# present a valid client key (when keys are configured).
UNAUTHENTICATED_BODY = 1024 * 1024

_log = Logger(namespace="copilot_proxy")


def _ignore(*args: object) -> None:
    pass


class LimitedRequest(ProxyRequest):
    """
    A request whose body is counted as it arrives: a chunked body over the
    limit is refused the moment it crosses it.
    """

    _body_seen = 0

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
    declared body length, answering with JSON errors.
    """

    limits = RequestLimits()
    #: Called with the status of each refusal made here (metrics).
    on_refused: Callable[[int], object] | None = None
    #: The client keys, checked before a large body is read (None: no keys).
    keys: KeyStore | None = None
    _head_timer: IDelayedCall | None = None
    _abort_timer: IDelayedCall | None = None
    _awaiting_head = True
    _head_lines = 0
    _head_bytes = 0

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
        self._head_lines += 1
        self._head_bytes += len(line) + 2
        if self._head_bytes > self.limits.max_head_bytes:
            self._refuse_head(first=self._head_lines == 1)
            return
        if self._head_lines - 1 > self.limits.max_headers:
            self._refuse_head(first=False)
            return
        super().lineReceived(line)  # type: ignore[no-untyped-call]

    def lineLengthExceeded(self, line: bytes) -> None:
        self._refuse_head(first=self._head_lines == 0)

    def allHeadersReceived(self) -> None:
        self._awaiting_head = False
        self._disarm_head_timer()
        self._head_lines = self._head_bytes = 0
        length = self.length
        if length is not None and length > self.limits.max_body:
            self.refuse_body()
            return
        if length is not None and length > UNAUTHENTICATED_BODY:
            # A large body from a client without a valid key is refused before
            # it is read; a small one is read, so the client surely gets its
            # 401 rather than a connection reset.
            if not check_client_key(self.keys, self.requests[-1].requestHeaders).allowed:
                self._refuse(
                    401,
                    KEY_REQUIRED,
                    "invalid_api_key",
                    b"www-authenticate: " + KEY_CHALLENGE + b"\r\n",
                )
                return
        super().allHeadersReceived()  # type: ignore[no-untyped-call]

    def requestDone(self, request: Any) -> None:
        self._awaiting_head = True
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

    def refuse_body(self) -> None:
        """Answer 413 and close: the body goes past C{max_body}."""
        limit = self.limits.max_body
        self._refuse(
            413,
            f"the request body is larger than this proxy accepts ({limit} bytes)",
            "request_too_large",
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

    def _refuse(self, status: int, message: str, code: str, extra: bytes = b"") -> None:
        self._disarm_head_timer()
        if self.on_refused is not None:
            self.on_refused(status)
        body = openai_error(message, "invalid_request_error", code)
        transport: Any = self.transport
        peer = transport.getPeer() if transport is not None else None
        _log.info(
            "refused a request from {peer}: {status} {code}", peer=peer, status=status, code=code
        )
        head = b"HTTP/1.1 %d %s\r\n" % (status, RESPONSES.get(status, b"Error"))
        head += b"content-type: application/json\r\ncontent-length: %d\r\n" % (len(body),)
        head += extra + b"connection: close\r\n\r\n"
        if transport is not None:
            transport.write(head + body)
        # Nothing more is read or parsed from this connection.
        self.dataReceived = self.lineReceived = self.rawDataReceived = _ignore  # type: ignore[method-assign,assignment]
        self.persistent = False
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
