"""
The real C{twistd copilot-proxy} on a GitHub login: the first exchange gates
the start, and a bad login fails it with one clear line and a non-zero exit.
"""

from __future__ import annotations

from pathlib import Path

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from copilot_proxy.testing.fake_github import GITHUB_TOKEN

from .._helpers import GitHub, Upstream, fetch, until
from .._twistd import Daemon, Twistd, clean_env, free_port, run_twistd


@pytest_twisted.ensureDeferred
async def test_revoked_github_token_fails_the_start_with_one_line(
    github: GitHub, tmp_path: Path
) -> None:
    github.fake.revoke(GITHUB_TOKEN)
    out, err, code = await run_twistd(
        [
            *("-n", "--pidfile=", "copilot-proxy", "--port", str(free_port())),
            *("--github-api-url", github.url),
        ],
        clean_env(home=tmp_path, COPILOT_GITHUB_TOKEN=GITHUB_TOKEN),
    )
    assert code == 1, (out, err)
    lines = err.decode().strip().splitlines()
    assert lines[-1].startswith("copilot-proxy: GitHub refused the GitHub token"), lines
    assert "copilot-proxy login" in lines[-1]
    text = (out + err).decode()
    assert "Traceback" not in text
    assert GITHUB_TOKEN not in text


@pytest_twisted.ensureDeferred
async def test_stored_login_serves_through_the_token_api_base(
    github: GitHub, upstream: Upstream, tmp_path: Path
) -> None:
    from copilot_proxy.tokens import store_token
    from copilot_proxy.wire import Secret

    state = tmp_path / "state"
    store_token(state, Secret(GITHUB_TOKEN))
    port = free_port()
    run = Twistd.spawn(
        [
            *("-n", "--pidfile=", "copilot-proxy", "--port", str(port)),
            *("--state-dir", str(state), "--github-api-url", github.url),
        ],
        env=clean_env(home=tmp_path),
    )
    try:
        response, _ = await run.serving(f"http://127.0.0.1:{port}/models")
        assert response.code == 200
        assert upstream.fake.received[-1].token == github.fake.issued[0]
    finally:
        assert await run.stop(10) == 0
    log = run.text
    assert "credential: stored login" in log
    assert GITHUB_TOKEN not in log and github.fake.issued[0] not in log


@pytest_twisted.ensureDeferred
async def test_sighup_rereads_the_login_and_renews(
    github: GitHub, upstream: Upstream, tmp_path: Path
) -> None:
    token_file = tmp_path / "github-token"
    token_file.write_text(GITHUB_TOKEN + "\n")
    port = free_port()
    run = Twistd.spawn(
        [
            *("-n", "--pidfile=", "copilot-proxy", "--port", str(port)),
            *("--github-token-file", str(token_file), "--github-api-url", github.url),
        ],
        env=clean_env(home=tmp_path),
    )
    try:
        url = f"http://127.0.0.1:{port}"
        await run.serving(url + "/models")
        assert github.fake.exchanges == [GITHUB_TOKEN]
        new_token = "gho_fake_github_token_0003"
        github.fake.github_tokens.add(new_token)
        token_file.write_text(new_token + "\n")
        run.signal("HUP")
        await until(lambda: len(github.fake.exchanges) == 2, seconds=10)
        assert github.fake.exchanges[-1] == new_token
        # The new token's answer reaches the proxy a moment after the fake
        # sent it; requests meanwhile still use the old, valid one.
        for _ in range(100):
            # Not /models: the proxy may answer that from its cache.
            response, _ = await fetch(url + "/embeddings", b"POST", body=b"{}")
            assert response.code == 200
            if upstream.fake.received[-1].token == github.fake.issued[-1]:
                break
            await deferLater(reactor, 0.05, lambda: None)
        assert upstream.fake.received[-1].token == github.fake.issued[-1]
    finally:
        assert await run.stop(10) == 0


@pytest_twisted.ensureDeferred
async def test_daemon_with_a_revoked_login_exits_1_and_leaves_nothing_running(
    github: GitHub, tmp_path: Path
) -> None:
    github.fake.revoke(GITHUB_TOKEN)
    daemon = Daemon(tmp_path)
    out, err, code = await daemon.start(
        *("--port", str(free_port()), "--github-api-url", github.url),
        env=clean_env(home=tmp_path, COPILOT_GITHUB_TOKEN=GITHUB_TOKEN),
    )
    # twistd's parent waits for the daemon's report and passes the reason on.
    assert code == 1, (out, err)
    assert b"GitHub refused the GitHub token" in err
    assert b"Traceback" not in err
    # The daemon itself has ended and cleaned up after itself.
    await daemon.gone()
    log = daemon.logfile.read_text()
    assert "cannot start: GitHub refused the GitHub token" in log
    assert GITHUB_TOKEN not in log + (out + err).decode()


@pytest_twisted.ensureDeferred
async def test_daemon_reports_started_once_it_has_a_token(
    github: GitHub, upstream: Upstream, tmp_path: Path
) -> None:
    import os as _os
    import signal

    daemon = Daemon(tmp_path)
    port = free_port()
    out, err, code = await daemon.start(
        *("--port", str(port), "--github-api-url", github.url),
        env=clean_env(home=tmp_path, COPILOT_GITHUB_TOKEN=GITHUB_TOKEN),
    )
    assert code == 0, (out, err)
    pid = daemon.pid
    try:
        # Started means serving: no waiting for the port to open.
        response, _ = await fetch(f"http://127.0.0.1:{port}/embeddings", b"POST", body=b"{}")
        assert response.code == 200
    finally:
        _os.kill(pid, signal.SIGTERM)
    await daemon.gone()
