"""
Logs: JSON lines for shippers, a log file that logrotate can move or
truncate, and no token in any log line or error body.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.logger import LogLevel, formatEvent
from twisted.python.failure import Failure

from copilot_proxy.app import json_line
from copilot_proxy.settings import ConfigError, log_format_option
from copilot_proxy.testing.fake_upstream import ACCEPTED_TOKEN

from .._helpers import (
    Proxy,
    Upstream,
    fetch,
    port_number,
    send,
    stream_request,
    timeout,
    until,
)
from .._twistd import Daemon, Twistd, clean_env, free_port, run_twistd

NOWHERE = "http://127.0.0.1:9"


# The JSON line format ------------------------------------------------------


def test_json_line_has_a_stable_envelope_and_the_event_fields() -> None:
    event = {
        "log_format": "{method} {status}",
        "log_level": LogLevel.info,
        "log_namespace": "copilot_proxy.access",
        "log_time": 1767225600.5,
        "log_logger": object(),
        "method": "POST",
        "status": 200,
        "ttfb_s": None,
        "model": "gpt-4o",
        "peer": ("127.0.0.1", 5),
    }
    line = json_line(event)
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {
        "time": "2026-01-01T00:00:00.500+00:00",
        "level": "info",
        "namespace": "copilot_proxy.access",
        "message": "POST 200",
        "method": "POST",
        "status": 200,
        "ttfb_s": None,
        "model": "gpt-4o",
        "peer": "('127.0.0.1', 5)",
    }


def test_json_line_carries_the_traceback_of_a_failure() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        failure = Failure()
    line = json.loads(
        json_line(
            {
                "log_format": "it failed",
                "log_level": LogLevel.critical,
                "log_failure": failure,
                "message": "would clash",
            }
        )
    )
    assert line["level"] == "critical"
    assert line["message"] == "it failed"
    assert "ValueError: boom" in line["error"]
    assert line["namespace"] == "-"


def test_log_format_is_text_or_json() -> None:
    assert log_format_option("json") == "json"
    with pytest.raises(ConfigError, match="--log-format"):
        log_format_option("xml")


# The real daemon -----------------------------------------------------------


def _json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _access(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["namespace"] == "copilot_proxy.access"]


@pytest_twisted.ensureDeferred
async def test_json_log_file_survives_logrotate_move_and_copytruncate(
    upstream: Upstream, tmp_path: Path
) -> None:
    port = free_port()
    daemon = Daemon(tmp_path)
    pidfile, logfile = daemon.pidfile, daemon.logfile
    token_file = tmp_path / "token"
    token_file.write_text(ACCEPTED_TOKEN + "\n")
    out, err, code = await daemon.start(
        *("--port", str(port), "--upstream", upstream.url, "--token-file", str(token_file)),
        *("--log-format", "json"),
        env=clean_env(),
    )
    assert code == 0, err
    pid = daemon.pid
    url = f"http://127.0.0.1:{port}"
    try:
        headers, body = stream_request(events=3)
        await fetch(url + "/chat/completions?api-version=1", b"POST", headers, body)
        await until(lambda: '"copilot_proxy.access"' in logfile.read_text())
        # logrotate's default: move the file away, then signal.
        rotated = tmp_path / "proxy.log.1"
        logfile.rename(rotated)
        os.kill(pid, signal.SIGHUP)
        await until(logfile.exists)
        await fetch(url + "/models")
        await until(lambda: '"copilot_proxy.access"' in logfile.read_text())
        # logrotate's copytruncate: the file is emptied under the writer.
        os.truncate(logfile, 0)
        await fetch(url + "/_proxy/nothing-here")
        await fetch(url + "/models?after=truncate")
        await until(lambda: "after" in logfile.read_text())
        os.kill(pid, signal.SIGTERM)
        await daemon.gone()
    finally:
        if pidfile.exists():
            os.kill(pid, signal.SIGKILL)

    first = _json_lines(rotated)
    (chat,) = _access(first)
    assert chat["message"].startswith("POST /chat/completions?api-version 200")
    assert chat["method"] == "POST" and chat["status"] == 200
    assert chat["path"] == "/chat/completions?api-version"
    assert chat["model"] == "gpt-4o" and chat["outcome"] == "complete"
    assert chat["client_key"] == "-" and len(chat["request_id"]) == 32
    assert chat["bytes"] > 0 and isinstance(chat["ttfb_s"], float)
    assert chat["level"] == "info" and chat["time"].endswith("+00:00")
    assert any("received SIGHUP" in line["message"] for line in first)

    # Written after the truncation: starts clean at offset 0, no hole of NULs.
    raw = logfile.read_bytes()
    assert raw.startswith(b"{") and b"\0" not in raw
    after = _json_lines(logfile)
    assert [line["path"] for line in _access(after)] == ["/models?after"]
    assert any("received SIGTERM" in line["message"] for line in after)
    for text in (rotated.read_text(), logfile.read_text()):
        assert ACCEPTED_TOKEN not in text
        assert "Traceback" not in text


@pytest_twisted.ensureDeferred
async def test_bad_log_format_fails_the_start_with_one_line() -> None:
    out, err, code = await run_twistd(
        ["-n", "copilot-proxy", "--port", str(free_port()), "--log-format", "yaml"],
        clean_env(COPILOT_TOKEN=ACCEPTED_TOKEN),
    )
    assert code == 1
    assert err.decode().strip().splitlines() == [
        "copilot-proxy: --log-format 'yaml' must be one of: text, json"
    ]


# Secrets -------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_no_token_in_any_log_line_or_error_body(
    make_proxy: Any, upstream: Upstream, log_events: list[dict[str, Any]]
) -> None:
    proxy: Proxy = make_proxy(upstream.url, idle_timeout=0.3)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    unreachable: Proxy = make_proxy(f"http://127.0.0.1:{closed.getsockname()[1]}")
    closed.close()
    bodies = []
    for target, method, headers in [
        (proxy.url + "/chat/completions", b"POST", {"x-fake-status": "401"}),
        (proxy.url + "/chat/completions", b"POST", {"x-fake-status": "429"}),
        (proxy.url + "/models", b"GET", {"x-fake-mode": "hang"}),
        (proxy.url + "/_proxy/healthz", b"DELETE", {}),
        (proxy.url + "/_proxy/missing", b"GET", {}),
        (proxy.url + "/_proxy/healthz", b"GET", {}),
        (proxy.url + "/_proxy/metrics", b"GET", {}),
        (unreachable.url + "/models", b"GET", {"authorization": f"Bearer {ACCEPTED_TOKEN}"}),
    ]:
        response, collector = await send(target, method, headers, b"{}")
        await timeout(collector.done)
        bodies.append(collector.body)
    headers, body = stream_request(events=2, mode="reset", interval=0.02)
    response, collector = await send(proxy.url + "/chat/completions", b"POST", headers, body)
    await timeout(collector.done)
    assert [json.loads(b)["error"]["code"] for b in bodies[2:5]] == [
        "upstream_timeout",
        "method_not_allowed",
        "not_found",
    ]
    assert json.loads(bodies[7])["error"]["code"] == "upstream_unreachable"
    for body in bodies:
        assert ACCEPTED_TOKEN.encode() not in body
    assert len(log_events) > 5
    for event in log_events:
        assert ACCEPTED_TOKEN not in json_line(event)
        assert ACCEPTED_TOKEN not in (formatEvent(event) or "")
        assert ACCEPTED_TOKEN not in repr(event)


@pytest_twisted.ensureDeferred
async def test_no_github_or_copilot_token_in_logs_bodies_or_health_on_a_github_login(
    reactor: Any, upstream: Upstream, github: Any, tmp_path: Path, log_events: list[dict[str, Any]]
) -> None:
    from copilot_proxy.app import build_daemon
    from copilot_proxy.settings import ProxyConfig, upstream_base
    from copilot_proxy.testing.fake_github import GITHUB_TOKEN
    from copilot_proxy.tokens import (
        CredentialSettings,
        GitHubAPI,
        find_credential,
        github_token_reader,
    )

    token_file = tmp_path / "github-token"
    token_file.write_text(GITHUB_TOKEN + "\n")
    settings = CredentialSettings.from_options(
        {"HOME": str(tmp_path)}, github_token_file=str(token_file)
    )
    fatal: list[str] = []
    daemon = build_daemon(
        reactor,
        # A closed port: requests reach the fake only by following the API
        # host the Copilot token names.
        ProxyConfig(listen="tcp:0:interface=127.0.0.1", upstream=upstream_base(NOWHERE)),
        find_credential(settings),
        github_token_reader(settings),
        GitHubAPI(reactor, github.url, github.url, timeout=5.0),
        follow_api=True,
        on_fatal=fatal.append,
    )
    daemon.top.startService()
    try:
        assert daemon.refresher is not None
        await timeout(daemon.refresher.ready())
        url = f"http://127.0.0.1:{port_number(daemon.proxy.port)}"
        bodies = []
        for path, method, headers in [
            ("/chat/completions", b"POST", {"x-fake-status": "429"}),
            ("/chat/completions", b"POST", {"x-fake-status": "500"}),
            ("/_proxy/healthz", b"PUT", {}),
            ("/_proxy/nope", b"GET", {}),
            ("//evil.example/x", b"GET", {}),
        ]:
            response, collector = await send(url + path, method, headers, b"{}")
            await timeout(collector.done)
            assert response.code >= 400, path
            bodies.append(collector.body)
        headers, body = stream_request(events=2)
        await fetch(url + "/chat/completions", b"POST", headers, body)
        response, health = await fetch(url + "/_proxy/healthz")
        assert response.code == 200
        assert json.loads(health)["upstream"] == upstream.url
        token_info = json.loads(health)["token"]
        assert token_info["source"] == "github"
        assert 0 < token_info["expires_in_s"] <= github.fake.lifetime
        _, metrics = await fetch(url + "/_proxy/metrics")
    finally:
        await daemon.top.stopService()
    assert not fatal
    secrets = [GITHUB_TOKEN, *github.fake.issued]
    assert len(secrets) > 1
    shown = [*bodies, health, metrics]
    for secret in secrets:
        for text in shown:
            assert secret.encode() not in text
        for event in log_events:
            assert secret not in json_line(event)
            assert secret not in (formatEvent(event) or "")


@pytest_twisted.ensureDeferred
async def test_foreground_json_logs_go_to_stdout_one_object_per_line(
    reactor: Any, upstream: Upstream
) -> None:
    port = free_port()
    run = Twistd.spawn(
        [
            *("-n", "--pidfile=", "copilot-proxy", "--port", str(port)),
            *("--upstream", upstream.url, "--log-format", "json"),
        ],
        env=clean_env(COPILOT_TOKEN=ACCEPTED_TOKEN),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await run.serving(url + "/_proxy/healthz")
        headers, body = stream_request(events=2)
        await fetch(url + "/chat/completions", b"POST", headers, body)
        await until(lambda: b"copilot_proxy.access" in b"".join(run.stdout), seconds=10)
    finally:
        assert await run.stop(20) == 0
    lines = [json.loads(line) for line in b"".join(run.stdout).decode().splitlines()]
    assert {"time", "level", "namespace", "message"} <= set(lines[0])
    (access,) = _access(lines)
    assert access["status"] == 200 and access["model"] == "gpt-4o"
    assert any(line["message"].startswith("copilot-proxy ") for line in lines)
    assert ACCEPTED_TOKEN not in run.text
