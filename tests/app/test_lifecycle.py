"""
Stopping: in-process for the drain logic, and the real C{twistd} command the
way a user or an init system runs it.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.application.service import IServiceMaker
from twisted.internet.error import ConnectionRefusedError
from twisted.plugin import getPlugins

from .._helpers import Upstream, fetch, send, stream_request, timeout
from .._twistd import Daemon, Twistd, clean_env, free_port, run_twistd

TOKEN = "fake-copilot-token"


@pytest_twisted.ensureDeferred
async def test_stop_closes_port_and_lets_streams_finish(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = make_proxy(upstream.url, shutdown_grace=10)
    headers, body = stream_request(events=10, interval=0.05)
    response, collector = await send(proxy.url + "/chat/completions", b"POST", headers, body)
    await timeout(collector.first)
    stopped = proxy.service.stopService()
    try:
        await fetch(proxy.url + "/models")
    except ConnectionRefusedError:
        pass
    else:
        raise AssertionError("the port still accepts connections while stopping")
    await timeout(collector.done)
    assert collector.complete
    assert collector.body.endswith(b"data: [DONE]\n\n")
    await timeout(stopped)


@pytest_twisted.ensureDeferred
async def test_stop_aborts_streams_left_after_grace(make_proxy: Any, upstream: Upstream) -> None:
    proxy = make_proxy(upstream.url, shutdown_grace=0.2)
    headers, body = stream_request(events=1000, interval=0.05)
    response, collector = await send(proxy.url + "/chat/completions", b"POST", headers, body)
    await timeout(collector.first)
    received = upstream.fake.received[-1]
    await timeout(proxy.service.stopService())
    await timeout(collector.done)
    assert not collector.complete
    await timeout(received.connection_lost, 1.0)


def test_plugin_is_found_by_twistd() -> None:
    names = {maker.tapname for maker in getPlugins(IServiceMaker)}
    assert "copilot-proxy" in names


@pytest_twisted.ensureDeferred
async def test_start_without_token_fails_with_one_line() -> None:
    out, err, code = await run_twistd(
        ["-n", "copilot-proxy", "--port", str(free_port())], clean_env()
    )
    assert code == 1
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("copilot-proxy: no credentials: run `copilot-proxy login`")


@pytest_twisted.ensureDeferred
async def test_start_on_a_busy_port_fails_with_one_line() -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        out, err, code = await run_twistd(
            ["-n", "copilot-proxy", "--port", str(busy.getsockname()[1])],
            clean_env(COPILOT_TOKEN=TOKEN),
        )
    finally:
        busy.close()
    assert code == 1
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and "cannot listen on" in lines[0], lines
    assert "Traceback" not in err.decode()


@pytest_twisted.ensureDeferred
async def test_daemon_with_pidfile_serves_and_stops_cleanly_on_sigterm(
    upstream: Upstream, tmp_path: Path
) -> None:
    port = free_port()
    daemon = Daemon(tmp_path)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    out, err, code = await daemon.start(
        *("--port", str(port), "--upstream", upstream.url, "--token-file", str(token_file)),
        env=clean_env(),
    )
    assert code == 0, err
    pid = daemon.pid
    try:
        headers, body = stream_request(events=20, interval=0.05)
        url = f"http://127.0.0.1:{port}"
        response, collector = await send(url + "/chat/completions", b"POST", headers, body)
        await timeout(collector.first)
        assert upstream.fake.received[-1].header("authorization") == f"Bearer {TOKEN}"
        os.kill(pid, signal.SIGTERM)
        # The stream in flight still completes; then the daemon goes away.
        await timeout(collector.done)
        assert collector.complete
        await daemon.gone()
    finally:
        if daemon.pidfile.exists():
            os.kill(pid, signal.SIGKILL)
    log = daemon.logfile.read_text()
    assert "POST /chat/completions 200" in log
    assert "received SIGTERM" in log
    assert "Traceback" not in log, log
    assert TOKEN not in log
    assert "Starting factory" not in log, "one log line per upstream connection is noise"


@pytest_twisted.ensureDeferred
async def test_foreground_sigterm_drains_and_exits_zero(upstream: Upstream) -> None:
    port = free_port()
    run = Twistd.spawn(
        ["-n", "--pidfile=", "copilot-proxy", "--port", str(port), "--upstream", upstream.url],
        env=clean_env(COPILOT_TOKEN=TOKEN),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await run.serving(url + "/models")
        headers, body = stream_request(events=10, interval=0.05)
        response, collector = await send(url + "/chat/completions", b"POST", headers, body)
        await timeout(collector.first)
        run.signal("TERM")
        await timeout(collector.done)
        assert collector.complete
        assert await timeout(run.ended, 10) == 0, run.text
    finally:
        run.kill()
