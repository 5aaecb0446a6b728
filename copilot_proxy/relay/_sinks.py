"""
Where the upstream body goes: the sinks an exchange writes it through.

Each sink's C{write} becomes the body protocol's C{dataReceived}.  For the
common case, L{Passthrough} of a body that is not an event stream, C{write}
is the client request's own C{write}: no call of ours per chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.web.iweb import IResponse
from twisted.web.server import Request

from ..wire import is_event_stream

# A collected answer (an error, a whole message) larger than this is not kept:
# the client gets the sink's 502 instead.
MAX_COLLECTED = 16 * 1024 * 1024


class BodySink(Protocol):
    """One way of delivering an upstream body to the client."""

    @property
    def write(self) -> Callable[[bytes], None]:
        """Called with each upstream chunk, in order."""

    @property
    def event_stream(self) -> bool:
        """Whether the client gets an event stream (keep-alives may go in)."""

    def watch_boundaries(self) -> None:
        """Keep-alives will be sent: make L{at_event_boundary} meaningful."""

    def at_event_boundary(self) -> bool:
        """Whether what the client got so far ends with a whole event."""

    def close(self) -> None:
        """The upstream body ended well: write what was held back, if any."""

    def cut(self) -> bool:
        """
        The upstream body ended badly.  Write what the client should get
        instead of the rest (an error event on a translated stream, a whole
        502 answer in place of a collected one), and say whether that is a
        complete answer to finish; else the exchange cuts the connection.
        """


class Passthrough:
    """
    The body goes to the client as it comes, after the status and headers,
    which are sent at once (a model may think for a minute before its first
    token, and the client should know the request was accepted meanwhile).
    """

    def __init__(self, request: Request, response: IResponse) -> None:
        self._request = request
        if isinstance(response.length, int) and request.method != b"HEAD":
            request.responseHeaders.setRawHeaders(b"content-length", [b"%d" % (response.length,)])
        request.write(b"")
        # A keep-alive written into an encoded (gzip) stream would corrupt it.
        self.event_stream = is_event_stream(response.headers) and not response.headers.hasHeader(
            b"content-encoding"
        )
        self.write: Callable[[bytes], None] = request.write
        self._tail = b""

    def watch_boundaries(self) -> None:
        # Keep-alives are wanted: note where chunks end, so that they go out
        # only between events.  Without keep-alives, write stays request.write.
        self.write = self._write_noting_tail

    def _write_noting_tail(self, data: bytes) -> None:
        self._tail = data
        self._request.write(data)

    def at_event_boundary(self) -> bool:
        return self._tail == b"" or self._tail.endswith((b"\n\n", b"\r\n\r\n"))

    def close(self) -> None:
        pass

    def cut(self) -> bool:
        return False


class Collect:
    """
    The (small) body is read whole and C{rewrite(body)} is sent instead, as
    JSON.  Only for answers that are not streams, such as errors.  Nothing
    reaches the client before the end, so a body that ends badly, or that
    C{rewrite} cannot read, still gets a whole answer: C{broken()}, a 502.
    """

    event_stream = False

    def __init__(
        self,
        request: Request,
        rewrite: Callable[[bytes], bytes],
        broken: Callable[[], bytes],
    ) -> None:
        request.responseHeaders.removeHeader(b"content-length")
        self._request = request
        self._rewrite = rewrite
        self._broken = broken
        self._parts: list[bytes] = []
        self._size = 0
        self.write: Callable[[bytes], None] = self._collect

    def _collect(self, data: bytes) -> None:
        self._size += len(data)
        if self._size <= MAX_COLLECTED:
            self._parts.append(data)

    def watch_boundaries(self) -> None:
        pass

    def at_event_boundary(self) -> bool:
        return True

    def close(self) -> None:
        whole, self._parts = b"".join(self._parts), []
        try:
            if self._size > MAX_COLLECTED:
                raise ValueError("too large to collect")
            body = self._rewrite(whole)
        except Exception:
            # An upstream body is untrusted: whatever it holds, the client
            # gets an answer.
            self.cut()
            return
        self._send(body)

    def cut(self) -> bool:
        self._parts = []
        self._request.setResponseCode(502)
        self._send(self._broken())
        return True

    def _send(self, body: bytes) -> None:
        headers = self._request.responseHeaders
        headers.setRawHeaders(b"content-type", [b"application/json"])
        headers.setRawHeaders(b"content-length", [b"%d" % (len(body),)])
        self._request.write(body)


class Translate:
    """
    The body is an event stream translated as it comes: C{feed} turns each
    chunk into whole events of the client's shape (perhaps none yet), C{end}
    gives the events that close the stream, and C{fail(message)} the error
    event that ends it early.  A chunk the translator cannot read ends the
    stream with that error event and calls C{stop}, which cuts the exchange.
    """

    event_stream = True

    def __init__(
        self,
        request: Request,
        feed: Callable[[bytes], bytes],
        end: Callable[[], bytes],
        fail: Callable[[str], bytes],
        stop: Callable[[], None],
    ) -> None:
        headers = request.responseHeaders
        for name in (b"content-length", b"content-encoding"):
            headers.removeHeader(name)
        headers.setRawHeaders(b"content-type", [b"text/event-stream; charset=utf-8"])
        headers.setRawHeaders(b"cache-control", [b"no-cache"])
        request.write(b"")
        self._request = request
        self._feed = feed
        self._end = end
        self._fail = fail
        self._stop = stop
        self._failed = False

    def write(self, data: bytes) -> None:
        if self._failed:
            return
        try:
            events = self._feed(data)
        except Exception:
            self._give_up("the upstream sent a stream this proxy cannot translate")
            return
        if events:
            self._request.write(events)

    def watch_boundaries(self) -> None:
        pass

    def at_event_boundary(self) -> bool:
        # Only whole translated events are ever written.
        return True

    def close(self) -> None:
        if self._failed:
            return
        try:
            events = self._end()
        except Exception:
            self._give_up("the upstream sent a stream this proxy cannot translate")
            return
        self._request.write(events)

    def cut(self) -> bool:
        if not self._failed:
            self._failed = True
            self._request.write(self._fail("the upstream stream was cut short"))
        return False

    def _give_up(self, message: str) -> None:
        self._failed = True
        self._request.write(self._fail(message))
        self._stop()
