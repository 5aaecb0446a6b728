"""
The daemon on a GitHub login, end to end on loopback: a fake GitHub hands out
Copilot tokens that live a second or two, and a fake Copilot API accepts each
only until it expires.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.task import deferLater
from twisted.logger import formatEvent

from copilot_proxy.app import Daemon, build_daemon
from copilot_proxy.settings import ProxyConfig, upstream_base
from copilot_proxy.testing.fake_github import GITHUB_TOKEN
from copilot_proxy.tokens import (
    CredentialSettings,
    GitHubAPI,
    find_credential,
    github_token_reader,
)

from .._helpers import (
    GitHub,
    Upstream,
    client_requests,
    fetch,
    port_number,
    send,
    stream_request,
    timeout,
    until,
)

# Where requests would go if the proxy did not follow the token's
# endpoints.api: a closed local port, never a real host.
NOWHERE = "http://127.0.0.1:9"


async def _sleep(reactor: Any, seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)


def _settings(tmp_path: Path, token: str = GITHUB_TOKEN) -> CredentialSettings:
    token_file = tmp_path / "github-token-file"
    token_file.write_text(token + "\n")
    return CredentialSettings.from_options(
        {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")},
        github_token_file=str(token_file),
    )


@pytest_twisted.async_yield_fixture
async def make_daemon(
    reactor: Any, github: GitHub, tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    started: list[Daemon] = []
    fatal: list[str] = []

    async def make(token: str = GITHUB_TOKEN, **timing: Any) -> tuple[Daemon, str]:
        settings = _settings(tmp_path, token)
        config = ProxyConfig(listen="tcp:0:interface=127.0.0.1", upstream=upstream_base(NOWHERE))
        timing.setdefault("backoff_base", 0.1)
        timing.setdefault("backoff_cap", 0.4)
        timing.setdefault("watch_interval", 0.1)
        timing.setdefault("min_forced_gap", 0.0)
        daemon = build_daemon(
            reactor,
            config,
            find_credential(settings),
            github_token_reader(settings),
            GitHubAPI(reactor, github.url, github.url, timeout=5.0),
            follow_api=True,
            on_fatal=fatal.append,
            **timing,
        )
        started.append(daemon)
        daemon.top.startService()
        assert daemon.refresher is not None
        await timeout(daemon.refresher.ready())
        return daemon, f"http://127.0.0.1:{port_number(daemon.proxy.port)}"

    yield make
    for daemon in started:
        if daemon.top.running:
            await daemon.top.stopService()
    assert not fatal


def _no_secret_in_logs(log_events: list[dict[str, Any]], *secrets: str) -> None:
    text = "\n".join(formatEvent(e) + repr(e) for e in log_events)
    assert text
    for secret in secrets:
        assert secret not in text


def _ask(url: str) -> Any:
    """One small non-streaming request (never answered from a proxy cache)."""
    body = json.dumps({"model": "gpt-4o", "messages": []}).encode()
    return fetch(url + "/chat/completions", b"POST", {"content-type": "application/json"}, body)


def _error(body: bytes) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(body)["error"]
    return error


@pytest_twisted.ensureDeferred
async def test_serves_across_token_lifetimes_each_request_with_the_current_token(
    reactor: Any,
    make_daemon: Any,
    github: GitHub,
    upstream: Upstream,
    log_events: list[dict[str, Any]],
) -> None:
    # Renewals come well ahead of expiry (1.5 s), so even a slow exchange on
    # a loaded machine never lets a request go out with an expired token.
    github.fake.lifetime = 2.0
    github.fake.refresh_in = 0.5
    daemon, url = await make_daemon()
    # A stream that starts now and runs while the token rotates under it.
    headers, body = stream_request(events=25, interval=0.1)
    response, stream = await send(url + "/chat/completions", b"POST", headers, body)
    started = time.time()
    sent = 1
    while time.time() - started < 3 * github.fake.lifetime:
        response, answer = await _ask(url)
        sent += 1
        assert response.code == 200, answer
        await _sleep(reactor, 0.05)
    await timeout(stream.done, 10)
    assert stream.complete and stream.body.endswith(b"data: [DONE]\n\n")
    received = client_requests(upstream.fake)
    # No request was ever refused and replayed: each carried a live token.
    assert len(received) == sent
    assert len(github.fake.issued) >= 6
    carried = [r.token for r in received if r.token is not None]
    assert len(carried) == len(received)
    assert set(carried) <= set(github.fake.issued)
    # Tokens were used in the order they were handed out, each until the next.
    order = [github.fake.issued.index(t) for t in carried[1:]]
    assert order == sorted(order) and len(set(order)) >= 5
    _no_secret_in_logs(log_events, GITHUB_TOKEN, *github.fake.issued)


@pytest_twisted.ensureDeferred
async def test_upstream_401_is_healed_by_one_refresh_and_one_replay(
    make_daemon: Any, github: GitHub, upstream: Upstream
) -> None:
    daemon, url = await make_daemon()
    github.fake.reject_copilot_tokens()
    body = json.dumps({"model": "gpt-4o", "messages": []}).encode()
    response, answer = await fetch(
        url + "/chat/completions", b"POST", {"content-type": "application/json"}, body
    )
    assert response.code == 200, answer
    first, replay = client_requests(upstream.fake)
    assert first.token == github.fake.issued[0]
    assert replay.token == github.fake.issued[1]
    assert first.body == replay.body == body
    assert len(github.fake.exchanges) == 2


@pytest_twisted.ensureDeferred
async def test_a_second_401_passes_through(
    make_daemon: Any, github: GitHub, upstream: Upstream
) -> None:
    daemon, url = await make_daemon()
    github.fake.reject_copilot_tokens()
    github.fake.copilot = None  # new tokens are refused too
    response, answer = await _ask(url)
    assert response.code == 401
    assert "token expired" in _error(answer)["message"]
    assert len(client_requests(upstream.fake)) == 2


@pytest_twisted.ensureDeferred
async def test_github_down_keeps_serving_until_expiry_then_503(
    reactor: Any, make_daemon: Any, github: GitHub
) -> None:
    github.fake.lifetime = 4.0
    github.fake.refresh_in = 1.0
    daemon, url = await make_daemon()
    token = daemon.refresher.current
    number = github.port.getHost().port
    await github.port.stopListening()
    # The renewal after refresh_in fails; the token still serves.
    await until(lambda: daemon.refresher.problem is not None, seconds=5)
    assert time.time() < token.expires_at
    response, _ = await _ask(url)
    assert response.code == 200
    await until(lambda: time.time() > token.expires_at + 0.05, seconds=5)
    response, answer = await _ask(url)
    assert response.code == 503
    assert response.headers.getRawHeaders(b"content-type") == [b"application/json"]
    message = _error(answer)["message"]
    assert "expired" in message and "unreachable" in message, message
    # GitHub comes back: a retry (backoff capped at 0.4 s here) heals it.
    github.port = reactor.listenTCP(number, github.fake.site, interface="127.0.0.1")
    await until(lambda: daemon.refresher.problem is None, seconds=5)
    response, _ = await _ask(url)
    assert response.code == 200


@pytest_twisted.ensureDeferred
async def test_revoked_github_token_gives_503_and_a_new_token_file_heals_it(
    make_daemon: Any,
    github: GitHub,
    tmp_path: Path,
    log_events: list[dict[str, Any]],
) -> None:
    github.fake.lifetime = 1.0
    daemon, url = await make_daemon()
    github.fake.revoke(GITHUB_TOKEN)
    token = daemon.refresher.current
    await until(lambda: time.time() > token.expires_at + 0.05, seconds=5)
    for _ in range(2):
        response, answer = await _ask(url)
        assert response.code == 503
        assert "copilot-proxy login" in _error(answer)["message"]
    refused = [e for e in log_events if "refused the GitHub token" in formatEvent(e)]
    assert len(refused) == 1, "the revocation is logged once"
    exchanges = len(github.fake.exchanges)
    # A new login appears in the same file; no restart.
    new_token = "gho_fake_github_token_0002"
    github.fake.github_tokens.add(new_token)
    (tmp_path / "github-token-file").write_text(new_token + "\n")
    await until(lambda: daemon.refresher.problem is None, seconds=5)
    assert github.fake.exchanges[exchanges:] == [new_token]
    response, _ = await _ask(url)
    assert response.code == 200
    _no_secret_in_logs(log_events, GITHUB_TOKEN, new_token, *github.fake.issued)


@pytest_twisted.ensureDeferred
async def test_requests_before_the_first_token_wait_for_it(
    reactor: Any, github: GitHub, upstream: Upstream, tmp_path: Path
) -> None:
    settings = _settings(tmp_path)
    config = ProxyConfig(listen="tcp:0:interface=127.0.0.1", upstream=upstream_base(NOWHERE))
    fatal: list[str] = []
    daemon = build_daemon(
        reactor,
        config,
        find_credential(settings),
        github_token_reader(settings),
        GitHubAPI(reactor, github.url, github.url),
        follow_api=True,
        on_fatal=fatal.append,
    )
    url = f"http://127.0.0.1:{port_number(daemon.proxy.port)}"
    # The port is bound but not accepting yet: the request waits in the
    # backlog until the first exchange, then is served.
    answered = _ask(url)
    await _sleep(reactor, 0.2)
    assert upstream.fake.received == []
    daemon.top.startService()
    try:
        response, _ = await answered
        assert response.code == 200
    finally:
        await daemon.top.stopService()
    assert fatal == []


@pytest_twisted.ensureDeferred
async def test_first_exchange_failure_is_fatal_with_the_reason(
    reactor: Any, github: GitHub, tmp_path: Path
) -> None:
    github.fake.revoke(GITHUB_TOKEN)
    settings = _settings(tmp_path)
    config = ProxyConfig(listen="tcp:0:interface=127.0.0.1", upstream=upstream_base(NOWHERE))
    fatal: list[str] = []
    daemon = build_daemon(
        reactor,
        config,
        find_credential(settings),
        github_token_reader(settings),
        GitHubAPI(reactor, github.url, github.url),
        follow_api=True,
        on_fatal=fatal.append,
    )
    daemon.top.startService()
    try:
        await until(lambda: bool(fatal))
    finally:
        await daemon.top.stopService()
    assert len(fatal) == 1 and "copilot-proxy login" in fatal[0]
    assert GITHUB_TOKEN not in fatal[0]


@pytest.mark.parametrize("status", [403, 404])
@pytest_twisted.ensureDeferred
async def test_account_without_copilot_is_refused_not_retried(
    reactor: Any, github: GitHub, status: int
) -> None:
    from copilot_proxy.tokens import GitHubRefused
    from copilot_proxy.wire import Secret

    github.fake.exchange_status = status
    api = GitHubAPI(reactor, github.url, github.url)
    with pytest.raises(GitHubRefused, match="no Copilot access"):
        await api.exchange(Secret(GITHUB_TOKEN))
