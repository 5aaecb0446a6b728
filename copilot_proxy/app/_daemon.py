"""
The whole daemon: the proxy service plus the token source that feeds it, and
the start-up order between them.

With a GitHub token the first Copilot token exchange must succeed before the
proxy serves anyone, so a revoked login fails the start instead of the first
request.  twistd's C{makeService} runs before the reactor, so it cannot wait
for an HTTP call; and the port is bound in C{makeService} on purpose (a port
in use fails the start with one line before twistd daemonizes).  So:

    - C{makeService} binds the port and stops it reading: connections that
      arrive meanwhile wait in the kernel's backlog instead of being refused;
    - L{CopilotTokenRefresher} does the first exchange when the reactor starts;
    - L{OpenWhenReady} starts accepting once that exchange worked, or calls
      C{on_fatal} with the reason (the tap logs it, stops the reactor and
      makes the process exit 1: see C{copilot_proxy._tap}).

A static Copilot token needs none of this: the port serves at once, and an
L{ExpiryWarning} warns ahead of the token's C{exp=}.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..access import AccessConfig
from ..server import ProxyService, SeatLogins
from ..settings import ProxyConfig
from ..shared import SharedState
from ..tokens import (
    CopilotToken,
    CopilotTokenRefresher,
    Credential,
    CredentialKind,
    ExpiryWarning,
    GitHubAPI,
    SeatPool,
    SeatsOnly,
    StaticToken,
    TokenSource,
    token_expiry,
)
from ..wire import Secret
from ._compose import build_proxy

_log = Logger(namespace="copilot_proxy")


class OpenWhenReady(Service):
    """
    Keeps a bound port from accepting until the first Copilot token is at
    hand; on failure hands the reason to C{on_fatal} instead.
    """

    def __init__(
        self,
        port: Any,
        refresher: CopilotTokenRefresher,
        on_fatal: Callable[[str], None],
    ) -> None:
        self._port = port
        self._refresher = refresher
        self._on_fatal = on_fatal
        self._ready = refresher.ready()
        # Ports of the stock endpoints are file descriptors that can stop
        # reading (IListeningPort declares no such method); anything else
        # simply serves at once, its first requests waiting for the token.
        pause = getattr(port, "stopReading", None)
        if pause is not None:
            pause()

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._ready.addCallbacks(self._open, self._failed)

    def _open(self, _: None) -> None:
        if not self.running:
            return
        resume = getattr(self._port, "startReading", None)  # see __init__
        if resume is not None:
            resume()
        _log.info("got the first Copilot token: accepting connections")

    def _failed(self, failure: Failure) -> None:
        if self.running:
            self._on_fatal(failure.getErrorMessage())


@dataclass
class Daemon:
    """
    The parts of a built daemon.

    @ivar top: the service to run: starts and stops everything in order.
    @ivar tokens: the token source the proxy asks.
    @ivar refresher: the same, when it renews itself; else L{None}.
    """

    top: MultiService
    proxy: ProxyService
    tokens: TokenSource
    refresher: CopilotTokenRefresher | None


def build_daemon(
    reactor: Any,
    config: ProxyConfig,
    credential: Credential,
    github_token: Callable[[], Secret | None],
    github: GitHubAPI,
    follow_api: bool,
    on_fatal: Callable[[str], None],
    access: AccessConfig | None = None,
    listen_fd: int | None = None,
    shared: SharedState | None = None,
    seats_dir: Path | None = None,
    **refresher_settings: Any,
) -> Daemon:
    """
    Wire the daemon for a credential found by
    L{copilot_proxy._credentials.find_credential}.

    @param github_token: reads the GitHub token afresh (see
        L{copilot_proxy._credentials.github_token_reader}).
    @param follow_api: send requests to the C{endpoints.api} each Copilot
        token names (when the user did not choose an upstream).
    @param on_fatal: called with a reason when the start fails after the
        reactor started (the first exchange failed).
    @param access: client keys and limits (see L{build_proxy}).
    @param listen_fd: an inherited listening socket (see L{build_proxy}).
    @param shared: Redis and the usage ledger (see L{build_proxy}); started
        before the proxy and stopped after it has drained.
    @param seats_dir: the state directory whose C{seats/} hold the seats'
        logins, or L{None} for no seats.
    @param refresher_settings: passed to L{CopilotTokenRefresher} (timings),
        the main login's and each seat's.
    @raise copilot_proxy._config.ConfigError: when the port cannot be bound.
    """
    top = MultiService()
    if shared is not None:
        shared.setServiceParent(top)  # type: ignore[no-untyped-call]
    seats = logins = None
    if seats_dir is not None:
        seats = SeatPool(
            reactor, seats_dir, github.exchange, follow_api=follow_api, **refresher_settings
        )
        logins = SeatLogins(reactor, github, seats, seats_dir)
        reactor.addSystemEventTrigger("before", "shutdown", seats.stop)
    if credential.kind is CredentialKind.SEATS:
        none = SeatsOnly()
        proxy = build_proxy(reactor, config, none, access, listen_fd, shared, seats, logins)
        proxy.setServiceParent(top)  # type: ignore[no-untyped-call]
        return Daemon(top, proxy, none, None)
    if credential.kind is CredentialKind.STATIC:
        tokens = StaticToken(credential.secret)
        proxy = build_proxy(reactor, config, tokens, access, listen_fd, shared, seats, logins)
        expiry = token_expiry(credential.secret.reveal())
        if expiry is not None:
            ExpiryWarning(reactor, expiry, credential.origin).setServiceParent(top)  # type: ignore[no-untyped-call]
        proxy.setServiceParent(top)  # type: ignore[no-untyped-call]
        return Daemon(top, proxy, tokens, None)

    holder: list[ProxyService] = []

    def follow(token: CopilotToken) -> None:
        if not follow_api or token.api is None or not holder:
            return
        upstream = holder[0].upstream
        if upstream.base != token.api:
            upstream.base = token.api
            _log.info("forwarding to {api}", api=token.api.decode("ascii"))

    refresher = CopilotTokenRefresher(
        reactor, github.exchange, github_token, on_token=follow, **refresher_settings
    )
    proxy = build_proxy(reactor, config, refresher, access, listen_fd, shared, seats, logins)
    holder.append(proxy)
    # Start order: the refresher first (it starts the exchange), the proxy,
    # then the gate.  Stop order is the reverse, so streams draining at stop
    # can still have a refused token renewed.
    refresher.setServiceParent(top)  # type: ignore[no-untyped-call]
    proxy.setServiceParent(top)  # type: ignore[no-untyped-call]
    OpenWhenReady(proxy.port, refresher, on_fatal).setServiceParent(top)  # type: ignore[no-untyped-call]
    return Daemon(top, proxy, refresher, refresher)
