"""
A Copilot token that renews itself: the token source of a proxy that runs for
weeks on one GitHub login.

L{CopilotTokenRefresher} trades the GitHub token for a Copilot token at start,
then again ahead of each expiry, in the background and one exchange at a
time.  Requests take the current token at once (an already-fired Deferred);
only when the token has expired do they wait for a renewal in flight, or get
L{TokenUnavailable} (a 503 that says why) when none is coming.

Failures are sorted by what can fix them:

    - GitHub unreachable or failing: keep the current token while it is
      valid and retry with exponential backoff and jitter, capped.
    - GitHub refuses the GitHub token (revoked, no Copilot): log it once and
      re-read the token source every few seconds, and on L{reload} (SIGHUP),
      until a different token appears; no exchange is repeated with the
      refused one.

The scheduling rules are pure functions (L{refresh_delay}, L{backoff_delay}),
and the clock is injected, so all of this is tested without waiting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..wire import Secret
from ._github import CopilotToken, GitHubError, GitHubRefused
from ._source import CredentialKind, TokenUnavailable

_log = Logger(namespace="copilot_proxy.token")

# Without a refresh_in hint, renew when this share of the lifetime is gone.
_LIFETIME_SHARE = 0.8

# The lifetime assumed for a token that looks expired on arrival (a clock
# ahead of GitHub's) when GitHub gave no refresh_in hint.
_SKEWED_LIFETIME = 300.0


#: What the user is told to run when the GitHub login is missing or refused.
LOGIN_HINT = "run `copilot-proxy login`"


def refresh_delay(now: float, expires_at: float, refresh_in: float | None) -> float:
    """
    Seconds from C{now} (just after an exchange) to the next renewal.

    GitHub's C{refresh_in} hint wins when it falls inside the lifetime;
    otherwise the renewal comes when 80% of the lifetime is gone.  Never
    negative: an already-expired token is renewed at once.
    """
    lifetime = max(expires_at - now, 0.0)
    if refresh_in is not None and 0 < refresh_in < lifetime:
        return refresh_in
    return lifetime * _LIFETIME_SHARE


def backoff_delay(failures: int, base: float, cap: float, rand: float) -> float:
    """
    Seconds to wait before retry number C{failures} (1 for the first retry).

    Exponential (C{base}, 2*C{base}, 4*C{base}...) up to C{cap}, with "equal
    jitter": a random point in the upper half of that step, so that many
    proxies cut off at once do not come back in lockstep, yet none retries
    much sooner than the step says.

    @param rand: a number in [0, 1), the jitter source.
    """
    step = min(cap, base * 2.0 ** min(max(failures - 1, 0), 64))
    return step / 2 + step / 2 * rand


def _clock_time(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


class _Header:
    """An C{Authorization} value kept out of C{repr()} and C{vars()} dumps."""

    __slots__ = ("value",)

    def __init__(self, value: bytes) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "_Header(<redacted>)"


class _ReadyOnce:
    """
    The first exchange's outcome, for L{CopilotTokenRefresher.ready}: told
    once, to those waiting then and to whoever asks later.
    """

    def __init__(self) -> None:
        # Unknown (empty), or [None] for a success, or [the Failure].
        self._outcome: list[Failure | None] = []
        self._waiting: list[Deferred[None]] = []

    @property
    def settled(self) -> bool:
        return bool(self._outcome)

    def ready(self) -> Deferred[None]:
        if self._outcome:
            outcome = self._outcome[0]
            return succeed(None) if outcome is None else fail(outcome)
        d: Deferred[None] = Deferred()
        self._waiting.append(d)
        return d

    def settle(self, outcome: Failure | None) -> None:
        """Record the outcome, unless one was recorded already."""
        if self._outcome:
            return
        self._outcome.append(outcome)
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            if outcome is None:
                d.callback(None)
            else:
                d.errback(outcome)


class _Waiters:
    """
    Requests waiting for the exchange in flight.  A Deferred per caller: a
    caller that gives up (cancels) must not cancel the exchange the others
    are waiting for.
    """

    def __init__(self) -> None:
        self._waiting: list[Deferred[Any]] = []

    def wait(self) -> Deferred[Any]:
        d: Deferred[Any] = Deferred(self._waiting.remove)
        self._waiting.append(d)
        return d

    def fire(self, authorization: bytes) -> None:
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(authorization)

    def fail(self, error: Exception) -> None:
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.errback(error)


class _RenewalTimer:
    """
    When the next exchange runs: one timer, and the count of transient
    failures in a row that the backoff grows with.
    """

    def __init__(
        self,
        clock: IReactorTime,
        renew: Callable[[], None],
        backoff_base: float,
        backoff_cap: float,
        rand: Callable[[], float],
    ) -> None:
        self._clock = clock
        self._renew = renew
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._rand = rand
        self._timer: IDelayedCall | None = None
        self._failures = 0

    def succeeded(self) -> None:
        """An exchange worked: the next failure backs off from the start."""
        self._failures = 0

    def backoff(self) -> float:
        """Count a transient failure; the delay before the retry."""
        self._failures += 1
        return backoff_delay(self._failures, self._backoff_base, self._backoff_cap, self._rand())

    def fired(self) -> None:
        """The timer ran (or a renewal started without it)."""
        self._timer = None

    def start(self, delay: float) -> None:
        self.cancel()
        self._timer = self._clock.callLater(delay, self._renew)

    def cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


class CopilotTokenRefresher(Service):
    """
    A L{copilot_proxy.tokens.TokenSource} that keeps a Copilot token fresh.

    @param clock: the reactor (or a L{twisted.internet.task.Clock}).
    @param exchange: trades a GitHub token for a L{CopilotToken}; fails with
        L{GitHubRefused} or another L{GitHubError}.
    @param github_token: reads the GitHub token from wherever it is kept,
        afresh at each call (a new login must be noticed without a restart);
        L{None} when there is none.
    @param on_token: called with every new Copilot token (to follow its API
        base URL).
    @param backoff_base: the first retry delay after a transient failure.
    @param backoff_cap: the longest retry delay.
    @param watch_interval: how often to look for a new GitHub token after
        GitHub refused the current one.
    @param login_hint: what to do when there is no GitHub token (a seat's
        own login command differs from the default login's).
    @param min_forced_gap: a token younger than this that the upstream refuses
        is not renewed again (its 401 passes through): this keeps an upstream
        that refuses everything from driving an exchange per request.
    """

    source = CredentialKind.GITHUB

    def __init__(
        self,
        clock: IReactorTime,
        exchange: Callable[[Secret], Deferred[CopilotToken]],
        github_token: Callable[[], Secret | None],
        on_token: Callable[[CopilotToken], None] | None = None,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        watch_interval: float = 5.0,
        min_forced_gap: float = 5.0,
        rand: Callable[[], float] = random.random,
        login_hint: str = LOGIN_HINT,
    ) -> None:
        self._clock = clock
        self._login_hint = login_hint
        self._exchange = exchange
        self._github_token = github_token
        self._on_token = on_token
        self._watch_interval = watch_interval
        self._min_forced_gap = min_forced_gap
        self._timer = _RenewalTimer(clock, self._renew, backoff_base, backoff_cap, rand)

        self._current: CopilotToken | None = None
        self._header = _Header(b"")
        self._expires_at = float("-inf")
        self._obtained = 0.0
        self._exchanging: Deferred[CopilotToken] | None = None
        self._waiters = _Waiters()
        self._problem: str | None = None
        self._refused: Secret | None = None
        self._first = _ReadyOnce()
        self.refreshes = 0
        self.refresh_failures = 0

    def __repr__(self) -> str:
        return f"CopilotTokenRefresher(refreshes={self.refreshes})"

    # What callers see -------------------------------------------------

    @property
    def current(self) -> CopilotToken | None:
        """The Copilot token in use, expired or not; L{None} before the first."""
        return self._current

    @property
    def usable(self) -> bool:
        """Whether a Copilot token is at hand and unexpired (for health checks)."""
        return self._valid()

    def expires_in(self) -> float | None:
        """Seconds until the current token expires; L{None} before the first."""
        if self._current is None:
            return None
        return self._current.expires_at - self._clock.seconds()

    @property
    def problem(self) -> str | None:
        """Why the last renewal failed, or L{None} when it worked."""
        return self._problem

    def ready(self) -> Deferred[None]:
        """
        Fires once the first Copilot token is at hand, or fails with the
        first exchange's L{GitHubError} (the start should fail then).
        """
        return self._first.ready()

    def authorization(self) -> Deferred[bytes]:
        # Per request: two attribute reads and a comparison when all is well.
        if self._clock.seconds() < self._expires_at:
            return succeed(self._header.value)
        if self._exchanging is None and self._problem is None:
            # Expired with no renewal planned (a suspended machine, a missed
            # timer): renew now and wait for it.
            self._renew()
        if self._exchanging is not None:
            return self._waiters.wait()
        return fail(TokenUnavailable(self._expired_message()))

    def refreshed_after(self, rejected: bytes) -> Deferred[bytes | None]:
        current = self._current
        if current is not None and current.authorization != rejected and self._valid():
            return succeed(current.authorization)
        if self._exchanging is None:
            now = self._clock.seconds()
            if self._current is not None and now - self._obtained < self._min_forced_gap:
                return succeed(None)
            _log.info("the Copilot API refused the current token: renewing it now")
            self._renew()
        if self._exchanging is None:
            return fail(TokenUnavailable(self._expired_message()))
        return self._waiters.wait()

    def reload(self) -> None:
        """
        Re-read the GitHub token and renew now (SIGHUP): a token that was
        refused gets one more exchange, in case its account was fixed.
        """
        _log.info("reloading the GitHub token")
        self._refused = None
        if self._exchanging is None:
            self._renew()

    # Service ----------------------------------------------------------

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._renew()

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]
        self._timer.cancel()
        if self._exchanging is not None:
            self._exchanging.cancel()

    # Inside -------------------------------------------------------------

    def _valid(self) -> bool:
        return self._current is not None and self._clock.seconds() < self._current.expires_at

    def _expired_message(self) -> str:
        problem = self._problem or "no Copilot token yet"
        if self._current is None:
            return problem
        if self._valid():
            return f"the Copilot API refused the token and it cannot be renewed: {problem}"
        return f"the Copilot token has expired and cannot be renewed: {problem}"

    def _schedule(self, delay: float) -> None:
        if self.running:
            self._timer.start(delay)
        else:
            self._timer.cancel()

    def _renew(self) -> None:
        self._timer.fired()
        if self._exchanging is not None:
            return
        github = self._github_token()
        if github is None:
            self._give_up(GitHubRefused(f"no GitHub token found: {self._login_hint}"), None)
            return
        if self._refused is not None and github == self._refused:
            # Still the token GitHub refused: look again later.
            self._give_up(GitHubRefused(self._problem or "the GitHub token was refused"), github)
            return
        d = self._exchange(github)
        self._exchanging = d
        d.addCallbacks(self._exchanged, self._failed, errbackArgs=(github,))

    def _exchanged(self, token: CopilotToken) -> None:
        self._exchanging = None
        now = self._clock.seconds()
        if token.expires_at <= now:
            # A token handed out this instant cannot have expired: this
            # clock is ahead of GitHub's.  Going by it would renew in a tight
            # loop, so give the token the lifetime GitHub's hint implies.
            lifetime = token.refresh_in if token.refresh_in is not None else _SKEWED_LIFETIME
            _log.warn(
                "the Copilot token expired before it arrived: is this machine's clock "
                "ahead? Assuming it lives {lifetime:g} s",
                lifetime=lifetime,
            )
            token = replace(token, expires_at=now + lifetime)
        self._current = token
        self._header = _Header(token.authorization)
        self._expires_at = token.expires_at
        self._obtained = now
        self._timer.succeeded()
        self._problem = None
        self._refused = None
        self.refreshes += 1
        delay = refresh_delay(now, token.expires_at, token.refresh_in)
        _log.info(
            "got a Copilot token valid until {expiry}; renewing in {delay:.0f} s",
            expiry=_clock_time(token.expires_at),
            delay=delay,
        )
        if self._on_token is not None:
            self._on_token(token)
        self._schedule(delay)
        self._waiters.fire(token.authorization)
        self._first.settle(None)

    def _failed(self, failure: Failure, github: Secret) -> None:
        self._exchanging = None
        self.refresh_failures += 1
        if not self.running:
            # Stopped meanwhile: nobody is waiting for a renewal any more.
            self._first.settle(failure)
            return
        error = failure.value
        if not isinstance(error, GitHubError):
            _log.failure("the Copilot token exchange failed unexpectedly", failure)
            error = GitHubError("the Copilot token exchange failed unexpectedly")
        self._give_up(error, github)

    def _give_up(self, error: Exception, github: Secret | None) -> None:
        message = str(error)
        # The first failure is reported by whoever waits on ready() (the
        # start fails with it); later ones are this module's to log.
        quiet = not self._first.settled
        if isinstance(error, GitHubRefused):
            if not quiet and (message != self._problem or github != self._refused):
                _log.error("cannot renew the Copilot token: {problem}", problem=message)
            self._refused = github
            delay = self._watch_interval
        else:
            delay = self._timer.backoff()
            if not quiet:
                _log.warn(
                    "cannot renew the Copilot token: {problem}; retrying in {delay:.1f} s",
                    problem=message,
                    delay=delay,
                )
        self._problem = message
        self._waiters.fail(TokenUnavailable(self._expired_message()))
        self._first.settle(Failure(error))
        if self.running:
            self._schedule(delay)


class ExpiryWarning(Service):
    """
    Warns in the log ahead of a static Copilot token's expiry: such a token
    is never renewed, and the proxy stops working when it runs out.

    @param expires_at: the token's C{exp=} time, POSIX seconds.
    @param origin: where the token came from, for the message.
    @param ahead: how many seconds before the expiry to warn.
    """

    def __init__(
        self, clock: IReactorTime, expires_at: float, origin: str, ahead: float = 300.0
    ) -> None:
        self._clock = clock
        self._expires_at = expires_at
        self._origin = origin
        self._ahead = ahead
        self._timer: IDelayedCall | None = None

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        delay = max(self._expires_at - self._ahead - self._clock.seconds(), 0.0)
        self._timer = self._clock.callLater(delay, self._warn)

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]
        if self._timer is not None and self._timer.active():
            self._timer.cancel()

    def _warn(self) -> None:
        left = self._expires_at - self._clock.seconds()
        when = _clock_time(self._expires_at)
        if left > 0:
            what = f"expires at {when} (in {left / 60:.0f} min)"
        else:
            what = f"expired at {when}"
        _log.warn(
            "the static Copilot token from {origin} {what} and is never renewed; "
            "use `copilot-proxy login` for tokens that renew themselves",
            origin=self._origin,
            what=what,
        )
