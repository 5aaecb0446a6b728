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
        self.event_stream = is_event_stream(response.headers)
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


class Collect:
    """
    The (small) body is read whole and C{rewrite(body)} is sent instead, as
    JSON.  Only for answers that are not streams, such as errors.
    """

    event_stream = False

    def __init__(self, request: Request, rewrite: Callable[[bytes], bytes]) -> None:
        request.responseHeaders.removeHeader(b"content-length")
        self._request = request
        self._rewrite = rewrite
        self._parts: list[bytes] = []
        self.write: Callable[[bytes], None] = self._parts.append

    def watch_boundaries(self) -> None:
        pass

    def at_event_boundary(self) -> bool:
        return True

    def close(self) -> None:
        body = self._rewrite(b"".join(self._parts))
        self._parts = []
        headers = self._request.responseHeaders
        headers.setRawHeaders(b"content-type", [b"application/json"])
        headers.setRawHeaders(b"content-length", [b"%d" % (len(body),)])
        self._request.write(body)


class Translate:
    """
    The body is an event stream translated as it comes: C{feed} turns each
    chunk into whole events of the client's shape (perhaps none yet), and
    C{end} gives the events that close the stream.
    """

    event_stream = True

    def __init__(
        self, request: Request, feed: Callable[[bytes], bytes], end: Callable[[], bytes]
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

    def write(self, data: bytes) -> None:
        events = self._feed(data)
        if events:
            self._request.write(events)

    def watch_boundaries(self) -> None:
        pass

    def at_event_boundary(self) -> bool:
        # Only whole translated events are ever written.
        return True

    def close(self) -> None:
        self._request.write(self._end())
