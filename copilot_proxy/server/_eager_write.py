"""
Writing response bytes to the client socket at once instead of on the next
reactor turn.

Twisted's TCP transport never writes in C{write()}: it queues the bytes,
asks the reactor to watch the socket for writability (one C{epoll_ctl}), and
sends on a later turn, then stops watching (another C{epoll_ctl}).  For a
stream of small SSE events that is three system calls and a reactor turn per
event where one C{send()} would do.  L{EagerWriteChannel} sends at once
whenever nothing is queued, and hands whatever the socket did not take to
the transport's own queue, so ordering, buffering limits and producer
backpressure stay Twisted's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.internet import tcp
from twisted.web.http import HTTPChannel


def send_now(transport: Any, data: bytes) -> None:
    """
    Send C{data} on a TCP transport, directly when its queue is empty.

    Only ever bypasses the queue when the queue is empty, so bytes cannot be
    reordered.  A socket error is not handled here: the unsent bytes go to
    the transport, whose own write path meets the same error and loses the
    connection the usual way.

    @param transport: a L{twisted.internet.tcp.Connection}.
    @param data: bytes to send.
    """
    if (
        transport.dataBuffer
        or transport._tempDataLen
        or not transport.connected
        or transport.disconnecting
        or transport._writeDisconnected
    ):
        transport.write(data)
        return
    try:
        sent = transport.socket.send(data)
    except OSError:
        sent = 0
    if sent < len(data):
        transport.write(data[sent:])


class EagerWriteChannel(HTTPChannel):
    """
    An L{HTTPChannel} whose response body writes go to the socket at once
    when the connection is plain TCP (or UNIX) and nothing is queued.

    Response headers still go through the transport's queue (Twisted writes
    them itself), so a body chunk right behind them is queued too, and sent
    with them in one C{send()}.  TLS connections use the ordinary path.
    """

    _eager = False

    def connectionMade(self) -> None:
        super().connectionMade()  # type: ignore[no-untyped-call]
        self._eager = isinstance(self.transport, tcp.Connection)

    def write(self, data: bytes) -> None:
        if self._eager:
            send_now(self.transport, data)
        else:
            super().write(data)  # type: ignore[no-untyped-call]

    def writeSequence(self, iovec: Iterable[bytes]) -> None:
        if self._eager:
            send_now(self.transport, b"".join(iovec))
        else:
            super().writeSequence(iovec)  # type: ignore[no-untyped-call]
