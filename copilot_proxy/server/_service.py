"""
The running proxy as a twistd service: listen, serve, and stop gracefully.

A graceful stop closes the listening port first, lets the streams in flight
run for a grace period, aborts what is left, then closes the client
connections only once their last bytes have been flushed to the socket:
calling C{finish()} is not the same as the client having the final chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.server import Site

from ..access import (
    AccessGate,
    KeyFileError,
    KeysFromFile,
    KeyStore,
    RequestLimits,
)
from ..relay import InFlight
from ..settings import ConfigError
from ..upstream import Upstream
from ._channel import LimitedChannel, LimitedRequest
from ._eager_write import EagerWriteChannel

_log = Logger(namespace="copilot_proxy")

# After the streams have ended, how long idle or finishing client connections
# get to flush their last bytes before they are cut.
_FLUSH_SECONDS = 5.0


class _TrackedChannel(LimitedChannel, EagerWriteChannel):
    """An HTTP/1.1 channel that tells its site when it opens and closes."""

    factory: ProxySite

    def connectionMade(self) -> None:
        self.limits = self.factory.limits
        self.on_refused = self.factory.on_refused
        self.keys = self.factory.keys
        super().connectionMade()
        self.factory.channels.add(self)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        super().connectionLost(reason)
        self.factory.channel_closed(self)


class ProxySite(Site):
    """
    A L{Site} that knows its open connections and leaves access logging to
    the relay, whose log line says how each exchange ended and never holds
    query values.
    """

    noisy = False
    protocol = _TrackedChannel  # type: ignore[assignment]
    requestFactory = LimitedRequest

    def __init__(
        self, resource: Any, reactor: IReactorTime, limits: RequestLimits | None = None
    ) -> None:
        # A proxy never reads form fields (request.args): without this,
        # Twisted parses the content type of every POST with the email
        # package (about 37 us each) and may answer a malformed multipart
        # body with its own 400 instead of relaying it.
        super().__init__(  # type: ignore[no-untyped-call]
            resource, reactor=reactor, parsePOSTFormSubmission=False
        )
        self.limits = limits or RequestLimits()
        # Called with the status of each request refused before it was
        # parsed (401, 413, 414, 431, 408) and who sent it (the key's name or
        # addr:<ip>): set by build_proxy for metrics and the usage ledger.
        self.on_refused: Callable[[int, str], object] | None = None
        # The client keys, for the channel's check before a body is read:
        # set by build_proxy.
        self.keys: KeyStore | None = None
        self.channels: set[HTTPChannel] = set()
        self._closed: list[tuple[HTTPChannel, Deferred[None]]] = []

    def log(self, request: Any) -> None:
        pass

    def channel_closed(self, channel: HTTPChannel) -> None:
        self.channels.discard(channel)
        waiting = [(c, d) for c, d in self._closed if c is channel]
        self._closed = [(c, d) for c, d in self._closed if c is not channel]
        for _, d in waiting:
            d.callback(None)

    def close_channels(self) -> Deferred[Any]:
        """
        Close every client connection after it has flushed what it was sent;
        fires when all of them are gone.
        """
        waits = []
        for channel in list(self.channels):
            d: Deferred[None] = Deferred()
            self._closed.append((channel, d))
            waits.append(d)
            channel.loseConnection()
        return DeferredList(waits)


class ProxyService(Service):
    """
    A bound listening port plus what it needs to stop well.

    The port is bound before the service starts (see L{build_proxy}), so that
    a port in use fails the start with one line before twistd daemonizes.
    """

    def __init__(
        self,
        port: IListeningPort,
        site: ProxySite,
        inflight: InFlight,
        upstream: Upstream,
        reactor: IReactorTime,
        grace: float,
        gate: AccessGate | None = None,
    ) -> None:
        super().__init__()
        self.port = port
        self.gate = gate
        self._site = site
        self._inflight = inflight
        self._upstream = upstream
        self._reactor = reactor
        self._grace = grace

    def reload_client_keys(self) -> None:
        """
        Re-read the client keys file (on SIGHUP).  Requests already admitted,
        streams included, go on; a file that cannot be used changes nothing.
        """
        keys = self.gate.keys if self.gate is not None else None
        if not isinstance(keys, KeysFromFile) or keys.path is None:
            return
        try:
            count = keys.reload()
        except KeyFileError as e:
            _log.error("client keys not reloaded, the {n} in use stay: {why}", n=len(keys), why=e)
            return
        _log.info("reloaded client keys from {path}: {n} in use", path=keys.path, n=count)

    @property
    def in_flight(self) -> int:
        """How many exchanges have not ended yet."""
        return len(self._inflight)

    @property
    def upstream(self) -> Upstream:
        """The upstream client; its C{base} may be changed while serving."""
        return self._upstream

    @inlineCallbacks
    def stopService(self) -> Any:
        super().stopService()  # type: ignore[no-untyped-call]
        yield self.port.stopListening()
        if self.gate is not None:
            self.gate.refuse_waiting()
        if len(self._inflight):
            _log.info(
                "stopping: waiting up to {grace:g} s for {n} stream(s) to finish",
                grace=self._grace,
                n=len(self._inflight),
            )
            drained = self._inflight.drained()
            timer = self._reactor.callLater(self._grace, drained.cancel)
            try:
                yield drained
                timer.cancel()
            except Exception:
                _log.warn("grace period over: aborting {n} stream(s)", n=len(self._inflight))
                self._inflight.abort_all()
        closing = self._site.close_channels()
        cut = self._reactor.callLater(_FLUSH_SECONDS, self._abort_channels)
        yield closing
        if cut.active():
            cut.cancel()
        yield self._upstream.close()

    def _abort_channels(self) -> None:
        for channel in list(self._site.channels):
            transport: Any = channel.transport
            if transport is not None:
                transport.abortConnection()


def listen(reactor: Any, description: str, site: ProxySite) -> IListeningPort:
    """
    Bind C{description} now.

    Every stock server endpoint (tcp, ssl, unix, systemd) binds synchronously;
    doing it here, rather than in C{startService}, turns a bad description or
    a port in use into a L{ConfigError} while stderr is still the terminal.
    """
    try:
        endpoint = serverFromString(reactor, description)
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"--port {description!r} is not a valid endpoint: {e}") from None
    outcome: list[Any] = []
    endpoint.listen(site).addBoth(outcome.append)
    if not outcome:
        raise ConfigError(f"--port {description!r} did not bind at start")
    if isinstance(outcome[0], Failure):
        reason = outcome[0].getErrorMessage().strip().splitlines()
        raise ConfigError(f"cannot listen on {description}: {reason[0] if reason else 'failed'}")
    port: IListeningPort = outcome[0]
    return port
