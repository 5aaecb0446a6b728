"""
Readiness for systemd's C{Type=notify}: tell the service manager when the
proxy really serves, and when it starts stopping.

"Started" for C{Type=simple} means only that the process exists; on a GitHub
login the proxy serves nobody until its first Copilot token exchange worked,
which can take seconds or fail.  With C{Type=notify} systemd (and units
ordered after this one) wait for C{READY=1}, sent once the port accepts
connections; a start that fails exits 1 before that, and systemd reports the
unit failed.  The protocol is one datagram per message to the C{AF_UNIX}
socket named in C{$NOTIFY_SOCKET} (sd_notify(3)); no library needed.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

_log = Logger(namespace="copilot_proxy")


def socket_address(value: str) -> str:
    """
    The C{sendto} address of a C{$NOTIFY_SOCKET} value: a path, or an
    abstract socket when it starts with C{@}.
    """
    return "\0" + value[1:] if value.startswith("@") else value


def notify(address: str, message: str) -> bool:
    """
    Send one sd_notify message; C{False} (and a warning) if it could not go.
    Never raises: a missing service manager must not break the proxy.
    """
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            s.sendto(message.encode("utf-8"), socket_address(address))
    except OSError as e:
        _log.warn("could not notify systemd: {error}", error=e.strerror or str(e))
        return False
    return True


class SystemdNotifier(Service):
    """
    Sends C{READY=1} once the proxy serves and C{STOPPING=1} when it begins
    to stop.

    @param ready: fires when the proxy accepts connections (the first token
        exchange on a GitHub login); L{None} when it does as soon as the
        reactor runs.
    """

    def __init__(self, reactor: Any, address: str, ready: Deferred[Any] | None) -> None:
        self._reactor = reactor
        self._address = address
        self._ready = ready

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        if self._ready is None:
            self._reactor.callWhenRunning(self._send_ready)
        else:
            self._ready.addCallbacks(lambda _: self._send_ready(), self._not_ready)

    def _send_ready(self) -> None:
        if self.running:
            notify(self._address, "READY=1\nSTATUS=serving")

    def _not_ready(self, failure: Failure) -> None:
        # The start failed; the process is about to exit 1 and says why.
        return None

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]
        notify(self._address, "STOPPING=1\nSTATUS=stopping: draining streams in flight")
