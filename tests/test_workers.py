"""
C{--workers N}: processes sharing one listening socket, started, signalled
and stopped together, run as the real C{twistd} command.
"""

from __future__ import annotations

import os
import re
import signal
from typing import Any

import pytest
import pytest_twisted

from copilot_proxy._config import ConfigError
from copilot_proxy._workers import listen_fd, worker_count

from ._helpers import Upstream, fetch, timeout, until
from ._twistd import Twistd, clean_env, free_port

TOKEN = "fake-copilot-token"


class _Twistd(Twistd):
    def worker_pids(self) -> list[int]:
        return [int(p) for p in re.findall(r"worker \d+ started, pid (\d+)", self.text)]


async def _start(upstream: Upstream, workers: int) -> tuple[Any, _Twistd, str]:
    port = free_port()
    watch = _Twistd.spawn(
        [
            *("-n", "--pidfile=", "copilot-proxy", "--port", str(port)),
            *("--upstream", upstream.url, "--workers", str(workers)),
        ],
        env=clean_env(COPILOT_TOKEN=TOKEN),
    )
    url = f"http://127.0.0.1:{port}"
    await watch.serving(url + "/models")
    await until(lambda: len(watch.worker_pids()) == workers - 1, 10)
    return watch.process, watch, url


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0) until reaped; it does not serve.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"


@pytest_twisted.ensureDeferred
async def test_workers_serve_the_port_get_sighup_and_stop_together(upstream: Upstream) -> None:
    process, watch, url = await _start(upstream, workers=2)
    [worker] = watch.worker_pids()
    try:
        # With the first process frozen, only the worker can accept: the
        # port is really shared.
        os.kill(process.pid, signal.SIGSTOP)
        try:
            response, body = await fetch(url + "/models")
            assert response.code == 200
        finally:
            os.kill(process.pid, signal.SIGCONT)

        process.signalProcess("HUP")
        await until(lambda: watch.text.count("received SIGHUP") == 2, 10)

        process.signalProcess("TERM")
        assert await timeout(watch.ended, 20) == 0, watch.text
        await until(lambda: not _alive(worker), 10)
    finally:
        if watch.ended.called is False:
            process.signalProcess("KILL")
    assert "Traceback" not in watch.text


@pytest_twisted.ensureDeferred
async def test_worker_stops_when_its_supervisor_is_killed(upstream: Upstream) -> None:
    process, watch, url = await _start(upstream, workers=2)
    [worker] = watch.worker_pids()
    try:
        process.signalProcess("KILL")
        await timeout(watch.ended, 10)
        await until(lambda: not _alive(worker), 15)
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)


def test_worker_count_is_checked() -> None:
    assert worker_count("1", "tcp:8080") == 1
    assert worker_count("4", "systemd:domain=INET:index=0") == 4
    for bad in ("0", "-2", "two", "1.5"):
        with pytest.raises(ConfigError):
            worker_count(bad, "tcp:8080")


def test_workers_refuse_a_tls_port() -> None:
    with pytest.raises(ConfigError, match="ssl"):
        worker_count("2", "ssl:8443:privateKey=key.pem")
    assert worker_count("1", "ssl:8443:privateKey=key.pem") == 1


def test_listen_fd_is_checked() -> None:
    assert listen_fd(None) is None
    assert listen_fd("3") == 3
    for bad in ("0", "2", "x", "-3"):
        with pytest.raises(ConfigError):
            listen_fd(bad)
