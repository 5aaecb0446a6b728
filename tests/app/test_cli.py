"""
The C{copilot-proxy} command as a user runs it (the installed console script)
against a fake GitHub on loopback.  HOME and XDG_CONFIG_HOME point into
tmp_path, so no login of the person running the tests is touched.
"""

from __future__ import annotations

import json
import stat
import sys
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.utils import getProcessOutputAndValue

from copilot_proxy.app._cli import health_url, quota_lines
from copilot_proxy.shared import COUNTERS, SqliteLedger
from copilot_proxy.shared._ledger import first_day, utc_day
from copilot_proxy.testing.fake_github import GITHUB_TOKEN, USER_CODE
from copilot_proxy.tokens import store_seat_token, store_token
from copilot_proxy.wire import Secret

from .._helpers import GitHub, Proxy, Upstream, fetch, port_number, stream_request, timeout
from .._twistd import clean_env

CLI = str(Path(sys.executable).with_name("copilot-proxy"))
STATIC_TOKEN = "tid=abc;exp=4102444800;sku=x;8kp=1:deadbeef"


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
    out, err, code = await _cli(None, tmp_path, "status", COPILOT_TOKEN=STATIC_TOKEN)
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


# seats: a named GitHub login per person --------------------------------------

BUSINESS_API = "http://business.copilot.invalid"


def _state(tmp_path: Path) -> Path:
    return tmp_path / "config" / "copilot-proxy"


def _two_seats(github: GitHub, tmp_path: Path) -> tuple[str, str]:
    """Seats alice (a Business account) and bob (an individual one) logged in."""
    alice = github.fake.add_account("alice", plan="business", api_base=BUSINESS_API)
    bob = github.fake.add_account("bob")
    github.fake.accounts["bob"].quota_remaining = 7
    store_seat_token(_state(tmp_path), "alice", Secret(alice))
    store_seat_token(_state(tmp_path), "bob", Secret(bob))
    return alice, bob


@pytest_twisted.ensureDeferred
async def test_login_with_a_seat_stores_that_accounts_token_0600(
    github: GitHub, tmp_path: Path
) -> None:
    github.fake.pending_rounds = github.fake.slow_down_rounds = 0
    alice = github.fake.add_account("alice", plan="business")
    github.fake.approve_as("alice")
    out, err, code = await _cli(github, tmp_path, "login", "--seat", "alice")
    assert code == 0, err
    path = _state(tmp_path) / "seats" / "alice"
    assert path.read_text() == alice + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert f"Seat alice logged in as alice; the GitHub token is stored in {path}" in out
    assert USER_CODE in out.splitlines()
    # The default login is not touched.
    assert not _stored(tmp_path).exists()
    assert alice not in out + err


@pytest_twisted.ensureDeferred
async def test_logins_of_two_seats_in_a_row_keep_each_account(
    github: GitHub, tmp_path: Path
) -> None:
    github.fake.pending_rounds = github.fake.slow_down_rounds = 0
    tokens = {login: github.fake.add_account(login) for login in ("alice", "bob")}
    for login in ("alice", "bob"):
        github.fake.approve_as(login)
        out, err, code = await _cli(github, tmp_path, "login", "--seat", login)
        assert code == 0, err
        assert f"Seat {login} logged in as {login};" in out
    for login, token in tokens.items():
        assert (_state(tmp_path) / "seats" / login).read_text() == token + "\n"


@pytest_twisted.ensureDeferred
async def test_logout_of_a_seat_removes_that_seat_only(github: GitHub, tmp_path: Path) -> None:
    _two_seats(github, tmp_path)
    store_token(_state(tmp_path), Secret(GITHUB_TOKEN))
    out, err, code = await _cli(None, tmp_path, "logout", "--seat", "alice")
    assert code == 0, err
    seats = _state(tmp_path) / "seats"
    assert out.splitlines()[0] == f"Seat alice logged out: removed {seats / 'alice'}"
    assert not (seats / "alice").exists()
    assert (seats / "bob").exists() and _stored(tmp_path).exists()
    out, err, code = await _cli(None, tmp_path, "logout", "--seat", "alice")
    assert code == 0, err
    assert out == f"Seat alice is not logged in: there is no login at {seats / 'alice'}\n"


@pytest_twisted.ensureDeferred
async def test_status_lists_each_seat_with_its_account_plan_quota_and_expiry(
    github: GitHub, tmp_path: Path
) -> None:
    alice, bob = _two_seats(github, tmp_path)
    store_token(_state(tmp_path), Secret(GITHUB_TOKEN))
    out, err, code = await _cli(github, tmp_path, "status")
    assert code == 0, err
    lines = out.splitlines()
    # The default credential first, as before.
    assert lines[0] == f"credential: stored login {_stored(tmp_path)} (a GitHub token)"
    assert "GitHub account: octocat" in lines
    seats = lines[lines.index("Seats:") + 1 :]
    assert seats[0] == "  seat alice: GitHub account alice"
    assert seats[1].startswith("    Copilot token: valid until ")
    assert f"    API base: {BUSINESS_API}" in seats
    assert "    plan: business (copilot_for_business_seat)" in seats
    bob_at = seats.index("  seat bob: GitHub account bob")
    assert f"    API base: {github.fake.api_base}" in seats[bob_at:]
    assert "    plan: individual (free_limited_copilot)" in seats[bob_at:]
    assert any(line.startswith("    premium requests: 7 of 300 left") for line in seats[bob_at:])
    assert len(github.fake.issued_to("alice")) == len(github.fake.issued_to("bob")) == 1
    for secret in (GITHUB_TOKEN, alice, bob, *github.fake.issued):
        assert secret not in out + err


@pytest_twisted.ensureDeferred
async def test_status_of_one_seat_shows_that_seat_only(github: GitHub, tmp_path: Path) -> None:
    _two_seats(github, tmp_path)
    out, err, code = await _cli(github, tmp_path, "status", "--seat", "bob")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "seat bob: GitHub account bob"
    assert "  plan: individual (free_limited_copilot)" in lines
    assert "alice" not in out and "credential:" not in out
    out, err, code = await _cli(github, tmp_path, "status", "--seat", "carol")
    assert code == 1
    assert err.splitlines() == [
        "copilot-proxy: seat carol is not logged in: run `copilot-proxy login --seat carol`"
    ]


@pytest_twisted.ensureDeferred
async def test_status_says_a_revoked_seat_must_log_in_again(
    github: GitHub, tmp_path: Path
) -> None:
    alice, bob = _two_seats(github, tmp_path)
    github.fake.revoke(alice)
    out, err, code = await _cli(github, tmp_path, "status", COPILOT_GITHUB_TOKEN=GITHUB_TOKEN)
    assert code == 0, err
    lines = out.splitlines()
    refused = "GitHub refused its login: run `copilot-proxy login --seat alice`"
    assert f"  seat alice: {refused}" in lines
    assert "  seat bob: GitHub account bob" in lines
    out, err, code = await _cli(github, tmp_path, "status", "--seat", "alice")
    assert code == 1
    assert err.splitlines() == [f"copilot-proxy: seat alice: {refused}"]
    assert alice not in out + err and bob not in out + err


@pytest_twisted.ensureDeferred
async def test_status_without_a_default_login_still_lists_the_seats(
    github: GitHub, tmp_path: Path
) -> None:
    _two_seats(github, tmp_path)
    out, err, code = await _cli(github, tmp_path, "status")
    # The default credential is missing, which status reports as before...
    assert code == 1
    assert err.startswith("copilot-proxy: no credentials: run `copilot-proxy login`")
    assert len(err.splitlines()) == 1
    # ...after listing the seats, which work without it.
    assert out.splitlines()[0] == "Seats:"
    assert "  seat alice: GitHub account alice" in out.splitlines()


@pytest_twisted.ensureDeferred
async def test_a_bad_seat_name_is_one_line(tmp_path: Path) -> None:
    for command in ("login", "logout", "status"):
        out, err, code = await _cli(None, tmp_path, command, "--seat", "../github-token")
        assert code == 1, command
        assert err.splitlines() == [
            "copilot-proxy: a seat name is 1-64 letters, digits or ._@:+- characters, "
            "not '../github-token'"
        ], err
    assert not (tmp_path / "config").exists()


# status --proxy: the quotas a running proxy saw -------------------------------


@pytest_twisted.ensureDeferred
async def test_status_with_proxy_prints_the_quotas_the_proxy_saw(
    proxy: Proxy, upstream: Upstream, tmp_path: Path
) -> None:
    headers, body = stream_request(events=2)
    response, _ = await fetch(proxy.url + "/chat/completions", b"POST", headers, body)
    assert response.code == 200
    out, err, code = await _cli(
        None, tmp_path, "status", "--proxy", proxy.url, COPILOT_TOKEN=STATIC_TOKEN
    )
    assert code == 0, err
    lines = out.splitlines()
    assert "credential: COPILOT_TOKEN (a static Copilot token, never renewed)" in lines
    heading = lines.index(
        f"quota as the proxy's latest upstream answers showed ({proxy.url}/_proxy/healthz):"
    )
    # The fake's windows began when it started, within the last minute.
    assert lines[heading + 1 :] == [
        "  session limit: 99.0% left, resets in 4 h 59 min",
        "  weekly limit: 99.8% left, resets in 6 days 23 h",
        "  premium requests: 99.6% left, resets in 29 days 23 h",
        "  chat: 99.9% left, resets in 29 days 23 h",
    ]


@pytest_twisted.ensureDeferred
async def test_status_with_proxy_before_any_answer_says_none_yet(
    proxy: Proxy, tmp_path: Path
) -> None:
    out, err, code = await _cli(
        None, tmp_path, "status", "--proxy", proxy.url + "/", COPILOT_TOKEN=STATIC_TOKEN
    )
    assert code == 0, err
    assert out.splitlines()[-1] == (
        "proxy quota: none seen yet (no upstream answer since the proxy started)"
    )


@pytest_twisted.ensureDeferred
async def test_status_with_an_unreachable_proxy_says_so_and_still_reports(
    reactor: Any, tmp_path: Path
) -> None:
    # A port that was free a moment ago, closed again before anyone connects.
    port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
    url = f"http://127.0.0.1:{port_number(port)}"
    await port.stopListening()
    out, err, code = await _cli(None, tmp_path, "status", "--proxy", url)
    # No credential here: the command fails, but says what the proxy showed.
    assert code == 1
    assert err.startswith("copilot-proxy: no credentials"), err
    last = out.splitlines()[-1]
    assert last.startswith(f"proxy quota: unknown (cannot read {url}/_proxy/healthz: "), last
    assert "refused" in last.lower()


@pytest_twisted.ensureDeferred
async def test_status_with_a_proxy_that_is_no_url_is_one_line(tmp_path: Path) -> None:
    out, err, code = await _cli(None, tmp_path, "status", "--proxy", "127.0.0.1:8080")
    assert code == 1
    assert err.splitlines() == [
        "copilot-proxy: --proxy needs an http:// or https:// URL, not '127.0.0.1:8080'"
    ]


@pytest.mark.parametrize(
    ("given", "health"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/_proxy/healthz"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/_proxy/healthz"),
        ("https://proxy.example/admin", "https://proxy.example/admin/healthz"),
        ("http://127.0.0.1:8080/_proxy/?x=1", "http://127.0.0.1:8080/_proxy/healthz"),
    ],
)
def test_health_url_of_a_proxy(given: str, health: str) -> None:
    assert health_url(given) == health


def test_quota_lines_read_like_a_sentence() -> None:
    document = {
        "weekly": {"percent_remaining": 80.44, "resets_in_s": 3 * 86400 + 7200.0},
        "session": {
            "percent_remaining": 63.0,
            "resets_in_s": 2 * 3600 + 10 * 60 + 5.0,
            "seen_s_ago": 0.2,
        },
        "premium_interactions": {"entitlement": -1, "percent_remaining": 100.0},
        "premium_models": {"percent_remaining": 0.0, "overage": 3.0, "resets_in_s": -5.0},
        "new_thing": {"percent_remaining": 50.0, "resets_in_s": 59.0, "seen_s_ago": 600.0},
    }
    assert quota_lines(document) == [
        "session limit: 63.0% left, resets in 2 h 10 min",
        "weekly limit: 80.4% left, resets in 3 days 2 h",
        "premium requests: unlimited",
        "premium models: 0.0% left, 3 over the quota, reset due",
        "new thing: 50.0% left, resets in under a minute (seen 10 min ago)",
    ]


def test_quota_lines_leave_out_what_no_proxy_writes() -> None:
    document: dict[str, Any] = {
        "session": {
            "percent_remaining": "63",
            "resets_in_s": float("inf"),
            "overage": True,
            "entitlement": True,
        },
        "Bad Name\x1b[31m": {"percent_remaining": 1.0},
        "chat": "not a mapping",
        **{f"q{i:02}": {"percent_remaining": float("nan")} for i in range(40)},
    }
    lines = quota_lines(document)
    assert lines[0] == "session limit: share left unknown"
    assert lines[1] == "q00: share left unknown"
    assert len(lines) == 16
    assert not any("Bad" in line or "chat" in line for line in lines)


# usage -----------------------------------------------------------------


def _seed_ledger(tmp_path: Path) -> tuple[str, str]:
    """
    A ledger in the default state directory with usage two days ago and
    twenty days ago; returns those two days.
    """
    directory = tmp_path / "config" / "copilot-proxy"
    directory.mkdir(parents=True)
    today = utc_day(time.time())
    recent, old = first_day(today, 3), first_day(today, 21)
    store = SqliteLedger(directory / "usage.sqlite3")
    store.add(
        {
            (recent, "alice", "gpt-4.1"): {
                "requests": 1200,
                "input_tokens": 1_234_567,
                "cached_tokens": 1_000,
                "output_tokens": 4_321,
                "reasoning_tokens": 21,
                "nano_aiu": 12_345_000_000,
            },
            (recent, "bob", "claude-sonnet-4"): {"requests": 3, "refused": 2, "errors": 1},
            (old, "alice", "gpt-4.1"): {"requests": 34, "nano_aiu": 1_000_000_000},
        }
    )
    store.close()
    return recent, old


@pytest_twisted.ensureDeferred
async def test_usage_shows_a_table_per_key_and_model_with_a_total(tmp_path: Path) -> None:
    _seed_ledger(tmp_path)
    out, err, code = await _cli(None, tmp_path, "usage")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Usage from ") and "(UTC)" in lines[0]
    assert lines[1].split() == [
        "key",
        "model",
        "requests",
        "refused",
        "errors",
        "input",
        "cached",
        "output",
        "reasoning",
        "credits",
    ]
    rows = [line.split() for line in lines[2:]]
    assert rows == [
        ["alice", "gpt-4.1", "1,234", "0", "0", "1,234,567", "1,000", "4,321", "21", "13.35"],
        ["bob", "claude-sonnet-4", "3", "2", "1", "0", "0", "0", "0", "0.00"],
        ["total", "1,237", "2", "1", "1,234,567", "1,000", "4,321", "21", "13.35"],
    ]


@pytest_twisted.ensureDeferred
async def test_usage_json_is_the_usage_document(tmp_path: Path) -> None:
    recent, old = _seed_ledger(tmp_path)
    out, err, code = await _cli(None, tmp_path, "usage", "--json")
    assert code == 0, err
    document = json.loads(out)
    assert set(document) == {"since", "until", "days", "keys", "seats"}
    assert document["seats"] == {}
    assert document["days"] == 30
    assert document["since"] == first_day(document["until"], 30)
    assert list(document["keys"]) == ["alice", "bob"]
    alice = document["keys"]["alice"]["gpt-4.1"]
    assert list(alice) == list(COUNTERS)
    assert alice["requests"] == 1234 and alice["nano_aiu"] == 13_345_000_000


@pytest_twisted.ensureDeferred
async def test_usage_days_and_key_narrow_the_answer(tmp_path: Path) -> None:
    _seed_ledger(tmp_path)
    out, err, code = await _cli(None, tmp_path, "usage", "--json", "--days", "5")
    assert code == 0, err
    document = json.loads(out)
    assert document["days"] == 5
    assert document["keys"]["alice"]["gpt-4.1"]["requests"] == 1200
    out, err, code = await _cli(None, tmp_path, "usage", "--json", "--key", "bob")
    assert code == 0, err
    assert list(json.loads(out)["keys"]) == ["bob"]
    out, err, code = await _cli(None, tmp_path, "usage", "--key", "carol")
    assert code == 0, err
    assert out.startswith("No usage recorded for key carol from ")


@pytest_twisted.ensureDeferred
async def test_usage_of_a_proxy_that_never_ran_is_empty_and_leaves_no_file(
    tmp_path: Path,
) -> None:
    out, err, code = await _cli(None, tmp_path, "usage")
    assert code == 0, err
    assert len(out.splitlines()) == 1 and out.startswith("No usage recorded from ")
    state = tmp_path / "state"
    state.mkdir()
    out, err, code = await _cli(None, tmp_path, "usage", "--json", "--state-dir", str(state))
    assert code == 0, err
    assert json.loads(out)["keys"] == {}
    assert list(state.iterdir()) == []


@pytest_twisted.ensureDeferred
async def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    runs = [
        (("usage", "--days", "0"), {}),
        (("usage", "--days", "many"), {}),
        (("usage", "--redis", "redis://:hunter2@127.0.0.1:1"), {}),
        (("usage",), {"COPILOT_PROXY_REDIS": "redis://:hunter2@127.0.0.1:1"}),
        (("usage", "--redis", "http://example"), {}),
    ]
    for args, env in runs:
        out, err, code = await _cli(None, tmp_path, *args, **env)
        assert code == 1, args
        assert len(err.splitlines()) == 1 and err.startswith("copilot-proxy: "), err
        assert "Traceback" not in err and "hunter2" not in out + err
        if "127.0.0.1:1" in " ".join(args) + str(env):
            assert "Redis at redis://:***@127.0.0.1:1/0" in err, err
    assert "--redis must start with" in err


@pytest_twisted.ensureDeferred
async def test_usage_of_a_file_that_is_no_ledger_is_one_line(tmp_path: Path) -> None:
    directory = tmp_path / "config" / "copilot-proxy"
    directory.mkdir(parents=True)
    (directory / "usage.sqlite3").write_bytes(b"not a database, at all" * 100)
    out, err, code = await _cli(None, tmp_path, "usage")
    assert code == 1
    assert len(err.splitlines()) == 1 and "usage.sqlite3" in err, err


@pytest_twisted.ensureDeferred
async def test_status_shows_the_quotas_a_proxy_kept_in_its_state_directory(
    reactor: Any, upstream: Upstream, tmp_path: Path
) -> None:
    from copilot_proxy.shared import SharedConfig, SharedState

    from .._helpers import start_proxy, stop_proxy

    state = _state(tmp_path)
    state.mkdir(parents=True)
    shared = SharedState(reactor, SharedConfig(), SqliteLedger(state / "usage.sqlite3"))
    proxy = start_proxy(reactor, upstream.url, shared=shared)
    try:
        headers, body = stream_request(events=2)
        response, _ = await fetch(proxy.url + "/chat/completions", b"POST", headers, body)
        assert response.code == 200
    finally:
        await stop_proxy(proxy)
    # The proxy is gone; what it last saw of the quotas is still there.
    out, err, code = await _cli(None, tmp_path, "status", COPILOT_TOKEN=STATIC_TOKEN)
    assert code == 0, err
    lines = out.splitlines()
    heading = lines.index("quota as the proxy's upstream answers showed it under a minute ago:")
    assert lines[heading + 1].startswith("  session limit: 99.0% left, resets in 4 h 5")
