"""
The refresher's rules on an injected clock: when it renews, how it backs off,
who waits and who does not, and what a refused GitHub token does.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from copilot_proxy.tokens import (
    CopilotToken,
    CopilotTokenRefresher,
    GitHubRefused,
    GitHubUnavailable,
    TokenUnavailable,
    backoff_delay,
    refresh_delay,
    token_expiry,
)
from copilot_proxy.wire import Secret

GITHUB = Secret("gho_unit")


def test_refresh_follows_refresh_in_when_inside_the_lifetime() -> None:
    assert refresh_delay(1000.0, 2800.0, 1500.0) == 1500.0


def test_refresh_at_80_percent_without_a_hint() -> None:
    assert refresh_delay(1000.0, 2000.0, None) == pytest.approx(800.0)


def test_refresh_ignores_a_hint_beyond_the_expiry() -> None:
    assert refresh_delay(0.0, 100.0, 500.0) == pytest.approx(80.0)


def test_refresh_of_an_expired_token_is_immediate() -> None:
    assert refresh_delay(500.0, 100.0, None) == 0.0


@given(
    now=st.floats(0, 1e9),
    lifetime=st.floats(0, 1e6),
    hint=st.none() | st.floats(-10, 1e6),
)
def test_refresh_always_comes_before_expiry(
    now: float, lifetime: float, hint: float | None
) -> None:
    expires_at = now + lifetime
    lifetime = expires_at - now  # as the floats have it
    delay = refresh_delay(now, expires_at, hint)
    assert 0.0 <= delay <= lifetime
    if lifetime > 1e-3:
        assert delay < lifetime


@given(failures=st.integers(1, 10_000), rand=st.floats(0, 1, exclude_max=True))
def test_backoff_is_capped_and_jittered_in_the_upper_half(failures: int, rand: float) -> None:
    delay = backoff_delay(failures, 1.0, 60.0, rand)
    step = min(60.0, 2.0 ** min(failures - 1, 10))
    assert step / 2 <= delay <= step
    assert delay <= 60.0


def test_backoff_doubles() -> None:
    delays = [backoff_delay(n, 1.0, 60.0, 0.0) for n in range(1, 9)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_token_expiry_reads_exp_field() -> None:
    assert token_expiry("tid=abc;exp=1700000000;sku=x;8kp=1:deadbeef") == 1700000000.0
    assert token_expiry("tid=abc;ol=1;exp=1700000000:mac") == 1700000000.0
    assert token_expiry("no-fields-here") is None
    assert token_expiry("exp=soon") is None


class Exchanges:
    """A scripted exchange: each call returns a Deferred the test fires."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.calls: list[tuple[Secret, Deferred[CopilotToken]]] = []
        self.github: Secret | None = GITHUB
        self.count = 0

    def __call__(self, github: Secret) -> Deferred[CopilotToken]:
        d: Deferred[CopilotToken] = Deferred()
        self.calls.append((github, d))
        return d

    def read(self) -> Secret | None:
        return self.github

    def succeed(self, lifetime: float = 100.0, refresh_in: float | None = None) -> CopilotToken:
        self.count += 1
        token = CopilotToken(
            Secret(f"tok{self.count}"), self.clock.seconds() + lifetime, refresh_in, None
        )
        self.calls[-1][1].callback(token)
        return token

    def fail(self, error: Exception) -> None:
        self.calls[-1][1].errback(Failure(error))


def _started(**settings: Any) -> tuple[Clock, Exchanges, CopilotTokenRefresher]:
    clock = Clock()
    exchanges = Exchanges(clock)
    settings.setdefault("rand", lambda: 0.0)
    refresher = CopilotTokenRefresher(clock, exchanges, exchanges.read, **settings)
    refresher.startService()
    return clock, exchanges, refresher


def _result(d: Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


def test_first_exchange_at_start_and_ready_fires() -> None:
    clock, exchanges, refresher = _started()
    ready = refresher.ready()
    assert len(exchanges.calls) == 1
    assert not ready.called
    exchanges.succeed()
    assert _result(ready) is None
    assert _result(refresher.authorization()) == b"Bearer tok1"


def test_requests_during_the_first_exchange_wait_for_it() -> None:
    clock, exchanges, refresher = _started()
    waiting = refresher.authorization()
    assert not waiting.called
    exchanges.succeed()
    assert _result(waiting) == b"Bearer tok1"


def test_renews_ahead_of_expiry_and_requests_never_wait_meanwhile() -> None:
    clock, exchanges, refresher = _started()
    exchanges.succeed(lifetime=100.0)
    clock.advance(79.9)
    assert len(exchanges.calls) == 1
    clock.advance(0.2)
    assert len(exchanges.calls) == 2
    # The renewal is in flight; requests still get the current token at once.
    assert _result(refresher.authorization()) == b"Bearer tok1"
    exchanges.succeed(lifetime=100.0)
    assert _result(refresher.authorization()) == b"Bearer tok2"


def test_one_exchange_at_a_time() -> None:
    clock, exchanges, refresher = _started()
    exchanges.succeed(lifetime=10.0)
    clock.advance(11.0)  # renewal started at 8 s, still in flight, token expired
    assert len(exchanges.calls) == 2
    waits = [refresher.authorization() for _ in range(5)]
    forced = refresher.refreshed_after(b"Bearer tok1")
    assert len(exchanges.calls) == 2
    exchanges.succeed()
    assert {_result(d) for d in waits} == {b"Bearer tok2"}
    assert _result(forced) == b"Bearer tok2"


def test_github_down_keeps_the_token_until_expiry_then_says_why() -> None:
    clock, exchanges, refresher = _started(backoff_base=1.0, backoff_cap=4.0)
    down = GitHubUnavailable("GitHub is unreachable: connection refused")
    exchanges.succeed(lifetime=40.0)
    clock.advance(32.0)
    exchanges.fail(down)
    assert _result(refresher.authorization()) == b"Bearer tok1"
    # Retries back off: 0.5, 1, 2, then 2 (cap 4, rand 0 -> half of it).
    times = []
    for _ in range(4):
        before = len(exchanges.calls)
        while len(exchanges.calls) == before:
            clock.advance(0.25)
        times.append(clock.seconds())
        exchanges.fail(down)
        assert _result(refresher.authorization()) == b"Bearer tok1"
    gaps = [b - a for a, b in zip([32.0, *times], times, strict=False)]
    assert gaps == [0.5, 1.0, 2.0, 2.0]
    while clock.seconds() < 40.0:
        clock.advance(0.25)
        if not exchanges.calls[-1][1].called:
            exchanges.fail(down)
    with pytest.raises(TokenUnavailable) as raised:
        _result(refresher.authorization())
    assert "expired" in str(raised.value) and "unreachable" in str(raised.value)
    # GitHub back: the next retry heals it.
    while exchanges.calls[-1][1].called:
        clock.advance(0.25)
    exchanges.succeed()
    assert _result(refresher.authorization()) == b"Bearer tok2"


def test_refused_github_token_waits_for_a_new_one() -> None:
    clock, exchanges, refresher = _started(watch_interval=5.0)
    exchanges.succeed(lifetime=10.0)
    clock.advance(8.0)
    exchanges.fail(GitHubRefused("GitHub refused the GitHub token: run `copilot-proxy login`"))
    clock.advance(60.0)
    # No second exchange with the same refused token, however long it waits.
    assert len(exchanges.calls) == 2
    with pytest.raises(TokenUnavailable, match="copilot-proxy login"):
        _result(refresher.authorization())
    exchanges.github = Secret("gho_new")
    clock.advance(5.0)
    assert len(exchanges.calls) == 3
    assert exchanges.calls[-1][0] == Secret("gho_new")
    exchanges.succeed()
    assert _result(refresher.authorization()) == b"Bearer tok2"


def test_reload_retries_even_the_same_refused_token() -> None:
    clock, exchanges, refresher = _started()
    exchanges.succeed(lifetime=10.0)
    clock.advance(8.0)
    exchanges.fail(GitHubRefused("no Copilot access"))
    refresher.reload()
    assert len(exchanges.calls) == 3


def test_refused_401_renews_once_and_coalesces() -> None:
    clock, exchanges, refresher = _started(min_forced_gap=1.0)
    exchanges.succeed(lifetime=100.0)
    clock.advance(2.0)
    first = refresher.refreshed_after(b"Bearer tok1")
    second = refresher.refreshed_after(b"Bearer tok1")
    assert len(exchanges.calls) == 2
    exchanges.succeed()
    assert _result(first) == _result(second) == b"Bearer tok2"
    # A request that was sent with the old token gets the new one at once.
    assert _result(refresher.refreshed_after(b"Bearer tok1")) == b"Bearer tok2"
    assert len(exchanges.calls) == 2


def test_a_brand_new_token_refused_is_not_renewed_again() -> None:
    clock, exchanges, refresher = _started(min_forced_gap=5.0)
    exchanges.succeed(lifetime=100.0)
    assert _result(refresher.refreshed_after(b"Bearer tok1")) is None
    assert len(exchanges.calls) == 1


def test_cancelled_waiter_does_not_cancel_the_exchange() -> None:
    clock, exchanges, refresher = _started()
    waiting = refresher.authorization()
    other = refresher.authorization()
    waiting.cancel()
    waiting.addErrback(lambda f: None)
    exchanges.succeed()
    assert _result(other) == b"Bearer tok1"


def test_first_exchange_failure_fails_ready() -> None:
    clock, exchanges, refresher = _started()
    ready = refresher.ready()
    exchanges.fail(GitHubRefused("GitHub refused the GitHub token: run `copilot-proxy login`"))
    with pytest.raises(GitHubRefused):
        _result(ready)
    refresher.stopService()
    assert clock.getDelayedCalls() == []


def test_no_github_token_at_all_says_to_log_in() -> None:
    clock = Clock()
    exchanges = Exchanges(clock)
    exchanges.github = None
    refresher = CopilotTokenRefresher(clock, exchanges, exchanges.read)
    refresher.startService()
    with pytest.raises(GitHubRefused, match="copilot-proxy login"):
        _result(refresher.ready())
    assert exchanges.calls == []
    refresher.stopService()


def test_stop_cancels_timers_and_the_exchange_in_flight() -> None:
    clock, exchanges, refresher = _started()
    exchanges.succeed(lifetime=10.0)
    clock.advance(8.0)
    refresher.stopService()
    assert exchanges.calls[-1][1].called  # cancelled
    assert clock.getDelayedCalls() == []


def test_repr_shows_no_token() -> None:
    clock, exchanges, refresher = _started()
    exchanges.succeed()
    assert "tok1" not in repr(refresher) + repr(vars(refresher))
    assert "tok1" not in repr(refresher.current)


def test_static_token_expiry_is_warned_ahead(log_events: list[dict[str, Any]]) -> None:
    from twisted.logger import formatEvent

    from copilot_proxy.tokens import ExpiryWarning

    clock = Clock()
    clock.advance(1000.0)
    warning = ExpiryWarning(clock, expires_at=2000.0, origin="COPILOT_TOKEN", ahead=300.0)
    warning.startService()
    clock.advance(699.0)
    said = [formatEvent(e) for e in log_events if "static Copilot token" in formatEvent(e)]
    assert said == []
    clock.advance(1.0)
    said = [formatEvent(e) for e in log_events if "static Copilot token" in formatEvent(e)]
    assert len(said) == 1
    assert "COPILOT_TOKEN expires at" in said[0] and "(in 5 min)" in said[0]
    assert "copilot-proxy login" in said[0]
    warning.stopService()
    assert clock.getDelayedCalls() == []


def test_a_clock_ahead_of_github_does_not_renew_in_a_loop() -> None:
    clock, exchanges, refresher = _started()
    exchanges.succeed(lifetime=-600.0, refresh_in=1500.0)  # "expired" 10 min ago
    assert _result(refresher.authorization()) == b"Bearer tok1"
    # Taken to live refresh_in seconds, renewed at 80% of that.
    clock.advance(1199.0)
    assert len(exchanges.calls) == 1
    clock.advance(1.0)
    assert len(exchanges.calls) == 2


def test_static_token_reports_its_expiry_for_health() -> None:
    import time

    from copilot_proxy.tokens import StaticToken

    later = StaticToken(Secret(f"tid=a;exp={int(time.time()) + 600};sku=x"))
    expires_in = later.expires_in()
    assert later.usable and expires_in is not None and 500 < expires_in <= 600
    gone = StaticToken(Secret(f"tid=a;exp={int(time.time()) - 1};sku=x"))
    assert not gone.usable
    plain = StaticToken(Secret("fake-copilot-token"))
    assert plain.usable and plain.expires_in() is None


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.floats()
    | st.integers()
    | st.integers(min_value=10**308, max_value=10**400)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(st.text())
def test_token_expiry_never_raises(token: str) -> None:
    expiry = token_expiry(token)
    assert expiry is None or isinstance(expiry, float)


@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "token": st.text() | _json,
            "expires_at": _json,
            "refresh_in": _json,
            "endpoints": st.fixed_dictionaries(
                {}, optional={"api": st.text().map("https://".__add__) | st.text() | _json}
            ),
        },
    )
)
def test_any_exchange_answer_parses_or_fails_with_a_github_error(body: dict[str, Any]) -> None:
    from copilot_proxy.tokens import parse_copilot_token

    try:
        token = parse_copilot_token(body)
    except GitHubUnavailable as e:
        assert "\n" not in str(e)
        return
    assert token.authorization.startswith(b"Bearer ")
    assert math.isfinite(token.expires_at)
    assert token.refresh_in is None or 0 < token.refresh_in < math.inf
    assert token.api is None or token.api.startswith((b"https://", b"http://"))


def test_an_unusable_api_endpoint_is_ignored_not_fatal() -> None:
    from copilot_proxy.tokens import parse_copilot_token

    for api in ("http://é.example", "ftp://x", "https://", "https://h/?q=1"):
        body = {"token": "t", "expires_at": 5, "endpoints": {"api": api}}
        assert parse_copilot_token(body).api is None
    body = {"token": "t", "expires_at": 5, "endpoints": {"api": "https://api.x.example/"}}
    assert parse_copilot_token(body).api == b"https://api.x.example"


def test_counters_count_exchanges_not_rechecks() -> None:
    clock, exchanges, refresher = _started(watch_interval=1.0)
    exchanges.succeed(lifetime=10.0)
    clock.advance(8.0)
    exchanges.fail(GitHubRefused("revoked"))
    clock.advance(30.0)  # 30 looks at the same refused token, no exchange
    assert (refresher.refreshes, refresher.refresh_failures) == (1, 1)
    assert not refresher.usable and refresher.expires_in() == pytest.approx(-28.0)
