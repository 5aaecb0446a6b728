"""
A Redis client for the reactor: one pipelined connection, a deadline on
every call, and an honest answer when the server cannot be reached.

Why not txredisapi: its calls wait, without a deadline, for a pool that is
reconnecting; its TLS takes an old-style context factory that verifies
nothing unless told; it uses the global reactor and carries no types.  The
proxy needs the opposite on every request: to know at once (or within
C{--redis-timeout}) that Redis is not there, and serve with its own limits.
RESP is small (L{_resp}); the rest is this module.

What callers may rely on:
    - L{RedisClient.call} fires within the deadline with the reply, or
      fails with L{SharedStateUnavailable} (no connection, a timeout, a lost
      connection) or L{ReplyError} (the server refused the command);
    - a call that times out aborts the connection: the next call reconnects
      (on demand, at most once a second) and a background retry runs with a
      backoff of at most 10 s, so an outage ends without help;
    - the state (C{ok} or C{unavailable}) changes are reported once each to
      C{on_state}, and logged once per outage; the password is never in a
      log line, an exception or C{repr()}.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, FirstError, fail, gatherResults
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    UNIXClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import IDelayedCall, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate, optionsForClientTLS, trustRootFromCertificates
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..settings import RedisTarget
from ._resp import Arg, ProtocolError, Reply, ReplyError, ReplyParser, encode_command

_log = Logger(namespace="copilot_proxy")

#: The longest wait between two reconnection attempts.
MAX_BACKOFF = 10.0
# The first wait, doubled after each failure up to MAX_BACKOFF.
_FIRST_BACKOFF = 0.5
# A call finding no connection starts an attempt, unless one began this
# recently.
_ON_DEMAND_GAP = 1.0


class SharedStateUnavailable(Exception):
    """Redis cannot answer now; the message says why, never a password."""


class Script:
    """
    A Lua script run by C{EVALSHA}, sent whole (C{EVAL}) only when the server
    does not know it yet.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()


class _Connection(Protocol):
    """One connection: commands written in order, replies matched in order."""

    def __init__(self) -> None:
        self._parser = ReplyParser()
        self._waiting: deque[Deferred[Reply]] = deque()
        self.lost: Deferred[None] = Deferred()

    def send(self, command: bytes) -> Deferred[Reply]:
        d: Deferred[Reply] = Deferred()
        self._waiting.append(d)
        assert self.transport is not None
        self.transport.write(command)
        return d

    def dataReceived(self, data: bytes) -> None:
        try:
            replies = self._parser.feed(data)
        except ProtocolError as e:
            self._abort(f"Redis sent something that is not RESP: {e}")
            return
        for reply in replies:
            if not self._waiting:
                self._abort("Redis sent a reply nobody asked for")
                return
            d = self._waiting.popleft()
            if isinstance(reply, ReplyError):
                d.errback(reply)
            else:
                d.callback(reply)

    def _abort(self, why: str) -> None:
        _log.warn("{why}; reconnecting", why=why)
        transport: Any = self.transport
        transport.abortConnection()

    def abort(self) -> None:
        transport: Any = self.transport
        if transport is not None:
            transport.abortConnection()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        waiting, self._waiting = self._waiting, deque()
        for d in waiting:
            d.errback(SharedStateUnavailable("the connection to Redis was lost"))
        self.lost.callback(None)


def _endpoint(reactor: Any, target: RedisTarget, timeout: float) -> IStreamClientEndpoint:
    if target.path is not None:
        return UNIXClientEndpoint(reactor, target.path, timeout=timeout)
    assert target.host is not None
    endpoint: IStreamClientEndpoint
    # An address needs no resolver thread (nor HostnameEndpoint's pacing of
    # attempts): a refused connection is known at once.
    if isIPAddress(target.host):
        endpoint = TCP4ClientEndpoint(reactor, target.host, target.port, timeout=timeout)
    elif isIPv6Address(target.host):
        endpoint = TCP6ClientEndpoint(reactor, target.host, target.port, timeout=timeout)
    else:
        endpoint = HostnameEndpoint(reactor, target.host, target.port, timeout=timeout)
    if target.tls:
        roots: Any = None
        if target.ca is not None:
            with open(target.ca, "rb") as f:
                roots = trustRootFromCertificates([Certificate.loadPEM(f.read())])
        options = optionsForClientTLS(target.host, trustRoot=roots)
        endpoint = wrapClientTLS(options, endpoint)
    return endpoint


class RedisClient:
    """
    The client of one Redis server.

    @param timeout: the deadline of each call, in seconds (C{--redis-timeout}).
    @param on_state: called with C{True} when Redis becomes reachable and
        C{False} when it stops being so.
    @param endpoint: how to connect (tests); by default from C{target}.
    """

    def __init__(
        self,
        reactor: Any,
        target: RedisTarget,
        timeout: float,
        on_state: Callable[[bool], object] | None = None,
        endpoint: IStreamClientEndpoint | None = None,
    ) -> None:
        self._reactor = reactor
        self.target = target
        self.timeout = timeout
        self._on_state = on_state
        self._endpoint = endpoint
        self._connection: _Connection | None = None
        self._connecting: Deferred[_Connection] | None = None
        self._waiters: list[Deferred[_Connection]] = []
        self._last_attempt = float("-inf")
        self._backoff = _FIRST_BACKOFF
        self._retry: IDelayedCall | None = None
        self._stopped = False
        # None until the first attempt ends: the first success is not news,
        # the first failure is.
        self._up: bool | None = None
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"RedisClient({self.target.display()}, {self.status})"

    @property
    def available(self) -> bool:
        """Whether a connection is up now."""
        return self._connection is not None

    @property
    def status(self) -> str:
        """C{ok} or C{unavailable}, as health shows it."""
        return "ok" if self._connection is not None else "unavailable"

    # Lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Connect now (and keep reconnecting until L{stop})."""
        self._stopped = False
        self._attempt()

    def stop(self) -> Deferred[None]:
        """Close the connection and stop reconnecting."""
        self._stopped = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._connecting is not None:
            self._connecting.cancel()
        connection, self._connection = self._connection, None
        if connection is None:
            d: Deferred[None] = Deferred()
            d.callback(None)
            return d
        transport: Any = connection.transport
        transport.loseConnection()
        return connection.lost

    # Calls -------------------------------------------------------------

    def call(self, *args: Arg) -> Deferred[Reply]:
        """
        Send one command; its reply, within the deadline.

        @raise SharedStateUnavailable: (as a failure) see the module's notes.
        @raise ReplyError: (as a failure) the server's error reply.
        """
        command = encode_command(*args)
        connection = self._connection
        if connection is not None:
            return self._deadline(connection.send(command), connection)
        waiter = self._wait_for_connection()
        if waiter is None:
            return fail(SharedStateUnavailable(self._why_unavailable()))
        result: Deferred[Reply] = Deferred()

        def connected(connection: _Connection) -> None:
            if result.called:
                return
            self._deadline(connection.send(command), connection).chainDeferred(result)

        def not_connected(failure: Failure) -> None:
            if not result.called:
                result.errback(failure)

        waiter.addCallbacks(connected, not_connected)
        timer = self._reactor.callLater(self.timeout, self._expire, result)
        result.addBoth(_cancel_timer, timer)
        return result

    def run(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg]) -> Deferred[Reply]:
        """
        Run C{script} with C{keys} and C{args}: one round trip once the
        server has seen it.
        """
        result: Deferred[Reply] = Deferred()

        def unknown(failure: Failure) -> None:
            if failure.check(ReplyError) and str(failure.value).startswith("NOSCRIPT"):
                self.call("EVAL", script.source, len(keys), *keys, *args).chainDeferred(result)
            else:
                result.errback(failure)

        self.call("EVALSHA", script.sha, len(keys), *keys, *args).addCallbacks(
            result.callback, unknown
        )
        return result

    def _deadline(self, d: Deferred[Reply], connection: _Connection) -> Deferred[Reply]:
        result: Deferred[Reply] = Deferred()

        def answered(reply: Reply | Failure) -> None:
            if result.called:
                return
            if isinstance(reply, Failure):
                result.errback(reply)
            else:
                result.callback(reply)

        d.addBoth(answered)

        def late() -> None:
            if not result.called:
                result.errback(
                    SharedStateUnavailable(f"Redis did not answer within {self.timeout:g} s")
                )
                # Slow means unusable for a proxy that waits on it: drop the
                # connection, serve with local limits, and reconnect.
                self._lose(connection, f"no answer within {self.timeout:g} s")

        timer = self._reactor.callLater(self.timeout, late)
        result.addBoth(_cancel_timer, timer)
        return result

    def _expire(self, result: Deferred[Reply]) -> None:
        if not result.called:
            result.errback(
                SharedStateUnavailable(f"Redis could not be reached within {self.timeout:g} s")
            )

    # Connecting --------------------------------------------------------

    def _why_unavailable(self) -> str:
        why = self.last_error or "not connected"
        return f"Redis at {self.target.display()} is unavailable ({why})"

    def _wait_for_connection(self) -> Deferred[_Connection] | None:
        if self._connecting is None and not self._stopped:
            if self._reactor.seconds() - self._last_attempt >= _ON_DEMAND_GAP:
                self._attempt()
        if self._connecting is None:
            return None
        waiter: Deferred[_Connection] = Deferred()
        self._waiters.append(waiter)
        return waiter

    def _attempt(self) -> None:
        if self._connecting is not None or self._connection is not None or self._stopped:
            return
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        self._last_attempt = self._reactor.seconds()
        connect_timeout = max(1.0, 2 * self.timeout)
        try:
            endpoint = self._endpoint or _endpoint(self._reactor, self.target, connect_timeout)
        except OSError as e:
            self._failed(Failure(SharedStateUnavailable(f"cannot read the CA file: {e.strerror}")))
            return
        connecting = cast(
            "Deferred[_Connection]", endpoint.connect(Factory.forProtocol(_Connection))
        )
        d = connecting.addCallback(self._hello)
        d.addTimeout(connect_timeout * 2, self._reactor)
        self._connecting = d
        d.addCallbacks(self._connected, self._failed)

    def _hello(self, connection: _Connection) -> Deferred[_Connection]:
        """Authenticate and select the database before any call goes out."""
        target = self.target
        commands: list[list[Arg]] = []
        if target.password is not None:
            auth: list[Arg] = ["AUTH"]
            if target.username:
                auth.append(target.username)
            auth.append(target.password.reveal())
            commands.append(auth)
        if target.db:
            commands.append(["SELECT", target.db])
        commands.append(["PING"])
        replies = gatherResults(
            [connection.send(encode_command(*command)) for command in commands],
            consumeErrors=True,
        )

        def ready(_: object) -> _Connection:
            return connection

        def refused(failure: Failure) -> Failure:
            connection.abort()
            if failure.check(FirstError):
                first: Failure = cast(FirstError, failure.value).subFailure
                return first
            return failure

        return replies.addCallbacks(ready, refused)

    def _connected(self, connection: _Connection) -> None:
        self._connecting = None
        if self._stopped:
            connection.abort()
            return
        self._connection = connection
        self._backoff = _FIRST_BACKOFF
        self.last_error = None
        connection.lost.addCallback(lambda _: self._lost(connection))
        if self._up is False:
            _log.info(
                "shared state: Redis at {where} is back; shared limits resume",
                where=self.target.display(),
            )
        self._set_up(True)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(connection)

    def _failed(self, failure: Failure) -> None:
        self._connecting = None
        why = _reason(failure)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.errback(SharedStateUnavailable(f"Redis at {self.target.display()}: {why}"))
        if self._stopped:
            return
        self._went_down(why)
        self._retry = self._reactor.callLater(self._backoff, self._attempt)
        self._backoff = min(MAX_BACKOFF, self._backoff * 2)

    def _lose(self, connection: _Connection, why: str) -> None:
        if self._connection is connection:
            self.last_error = why
            connection.abort()

    def _lost(self, connection: _Connection) -> None:
        if self._connection is not connection:
            return
        self._connection = None
        if self._stopped:
            return
        self._went_down(self.last_error or "the connection was lost")
        # Try again soon; a call may try sooner (on demand).
        self._retry = self._reactor.callLater(self._backoff, self._attempt)

    def _went_down(self, why: str) -> None:
        self.last_error = why
        if self._up is not False:
            _log.warn(
                "shared state: Redis at {where} is unavailable ({why}); serving with this "
                "process's own limits until it is back",
                where=self.target.display(),
                why=why,
            )
        self._set_up(False)

    def _set_up(self, up: bool) -> None:
        if self._up is up:
            return
        self._up = up
        if self._on_state is not None:
            self._on_state(up)


def _cancel_timer(result: object, timer: IDelayedCall) -> object:
    if timer.active():
        timer.cancel()
    return result


def _reason(failure: Failure) -> str:
    """Why a connection attempt failed, in a few words and without secrets."""
    value = failure.value
    if isinstance(value, ReplyError):
        if value.kind in ("WRONGPASS", "NOAUTH") or "password" in str(value).lower():
            return "Redis refused the password"
        return f"Redis refused the connection ({value.kind})"
    if isinstance(value, SharedStateUnavailable):
        return str(value)
    name = type(value).__name__
    text = str(value).strip().splitlines()[0] if str(value).strip() else ""
    return f"{name}: {text[:200]}" if text else name
