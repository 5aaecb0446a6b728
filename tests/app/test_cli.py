"""
The C{copilot-proxy} command as a user runs it (the installed console script)
against a fake GitHub on loopback.  HOME and XDG_CONFIG_HOME point into
tmp_path, so no login of the person running the tests is touched.
"""

from __future__ import annotations

import stat
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet.utils import getProcessOutputAndValue

from copilot_proxy.testing.fake_github import GITHUB_TOKEN, USER_CODE
from copilot_proxy.tokens import store_token
from copilot_proxy.wire import Secret

from .._helpers import GitHub, timeout
from .._twistd import clean_env

CLI = str(Path(sys.executable).with_name("copilot-proxy"))


async def _cli(
    github: GitHub | None, tmp_path: Path, *args: str, **env: str
) -> tuple[str, str, int]:
    urls = ["--github-url", github.url, "--github-api-url", github.url] if github else []
    out, err, code = await timeout(
        getProcessOutputAndValue(CLI, [*args, *urls], env=clean_env(home=tmp_path, **env)), 60
    )
    return out.decode(), err.decode(), code


def _stored(tmp_path: Path) -> Path:
    return tmp_path / "config" / "copilot-proxy" / "github-token"


@pytest_twisted.ensureDeferred
async def test_login_stores_a_0600_token_after_pending_and_slow_down(
    github: GitHub, tmp_path: Path
) -> None:
    github.fake.pending_rounds = 2
    github.fake.slow_down_rounds = 1
    out, err, code = await _cli(github, tmp_path, "login")
    assert code == 0, err
    lines = out.splitlines()
    # The URL and the code each stand alone on a line, to copy and paste.
    assert f"{github.url}/login/device" in lines
    assert USER_CODE in lines
    path = _stored(tmp_path)
    assert path.read_text() == GITHUB_TOKEN + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    polls = github.fake.polls
    assert len(polls) == 4
    gaps = [b - a for a, b in pairwise(polls)]
    # Polls at the given interval, and 5 s slower after slow_down.
    assert all(gap < 4 for gap in gaps[:2]), gaps
    assert gaps[2] >= 5.0, gaps
    assert "Logged in as octocat" in out
    assert GITHUB_TOKEN not in out + err


@pytest_twisted.ensureDeferred
async def test_login_denied_ends_with_one_line(github: GitHub, tmp_path: Path) -> None:
    github.fake.pending_rounds = 0
    github.fake.slow_down_rounds = 0
    github.fake.device_outcome = "access_denied"
    out, err, code = await _cli(github, tmp_path, "login")
    assert code == 1
    assert err.splitlines() == ["copilot-proxy: the login was denied on GitHub"]
    assert not _stored(tmp_path).exists()


@pytest_twisted.ensureDeferred
async def test_login_with_an_expired_code_ends_with_one_line(
    github: GitHub, tmp_path: Path
) -> None:
    github.fake.pending_rounds = 0
    github.fake.slow_down_rounds = 0
    github.fake.device_outcome = "expired_token"
    out, err, code = await _cli(github, tmp_path, "login")
    assert code == 1
    assert len(err.splitlines()) == 1 and "expired" in err


@pytest_twisted.ensureDeferred
async def test_status_shows_source_expiry_api_plan_and_quota_but_no_token(
    github: GitHub, tmp_path: Path
) -> None:
    store_token(tmp_path / "config" / "copilot-proxy", Secret(GITHUB_TOKEN))
    github.fake.quota_remaining = 123
    out, err, code = await _cli(github, tmp_path, "status")
    assert code == 0, err
    assert f"credential: stored login {_stored(tmp_path)}" in out
    assert "GitHub account: octocat" in out
    assert "Copilot token: valid until" in out
    assert f"API base: {github.fake.api_base}" in out
    assert "plan: individual" in out
    assert "premium requests: 123 of 300 left" in out
    for secret in (GITHUB_TOKEN, *github.fake.issued):
        assert secret not in out + err


@pytest_twisted.ensureDeferred
async def test_status_of_a_static_token_reads_its_expiry(tmp_path: Path) -> None:
    token = "tid=abc;exp=4102444800;sku=x;8kp=1:deadbeef"
    out, err, code = await _cli(None, tmp_path, "status", COPILOT_TOKEN=token)
    assert code == 0, err
    assert "credential: COPILOT_TOKEN (a static Copilot token, never renewed)" in out
    assert "valid until 2100-01-01 00:00:00 UTC" in out
    assert "abc" not in out and "deadbeef" not in out


@pytest_twisted.ensureDeferred
async def test_status_with_a_revoked_login_fails_with_one_line(
    github: GitHub, tmp_path: Path
) -> None:
    github.fake.revoke(GITHUB_TOKEN)
    out, err, code = await _cli(github, tmp_path, "status", COPILOT_GITHUB_TOKEN=GITHUB_TOKEN)
    assert code == 1
    assert len(err.splitlines()) == 1 and "copilot-proxy login" in err
    assert "credential: COPILOT_GITHUB_TOKEN" in out
    assert "Traceback" not in err and GITHUB_TOKEN not in out + err


@pytest_twisted.ensureDeferred
async def test_status_without_any_login_says_to_log_in(tmp_path: Path) -> None:
    out, err, code = await _cli(None, tmp_path, "status")
    assert code == 1
    assert err.startswith("copilot-proxy: no credentials: run `copilot-proxy login`")


@pytest_twisted.ensureDeferred
async def test_logout_removes_the_stored_login(tmp_path: Path) -> None:
    store_token(tmp_path / "config" / "copilot-proxy", Secret(GITHUB_TOKEN))
    out, err, code = await _cli(None, tmp_path, "logout")
    assert code == 0, err
    assert not _stored(tmp_path).exists()
    out, err, code = await _cli(None, tmp_path, "logout")
    assert code == 0 and "Not logged in" in out


@pytest_twisted.ensureDeferred
async def test_no_command_or_a_bad_option_is_one_line(tmp_path: Path) -> None:
    for args in ([], ["status", "--bogus"]):
        out, err, code = await _cli(None, tmp_path, *args)
        assert code != 0
        assert len(err.splitlines()) == 1 and err.startswith("copilot-proxy: "), err


@pytest_twisted.ensureDeferred
async def test_status_goes_through_the_corporate_proxy(
    reactor: Any, github: GitHub, tmp_path: Path
) -> None:
    from .._connect_proxy import ConnectProxy

    proxy = ConnectProxy(reactor)
    port = reactor.listenTCP(0, proxy.factory, interface="127.0.0.1")
    try:
        out, err, code = await _cli(
            github,
            tmp_path,
            "status",
            COPILOT_GITHUB_TOKEN=GITHUB_TOKEN,
            http_proxy=f"http://127.0.0.1:{port.getHost().port}",
        )
    finally:
        await port.stopListening()
    assert code == 0, err
    assert "GitHub account: octocat" in out
    targets = {target for method, target, headers in proxy.requests if method == "CONNECT"}
    assert targets == {github.url.removeprefix("http://")}
