"""
C{--workers N}: processes sharing one listening socket, started, signalled
and stopped together, run as the real C{twistd} command.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
from typing import Any

import pytest
import pytest_twisted

from copilot_proxy.app import listen_fd, worker_count
from copilot_proxy.settings import ConfigError

from .._helpers import Upstream, fetch, timeout, until
from .._twistd import Twistd, clean_env, free_port

TOKEN = "fake-copilot-token"


class _Twistd(Twistd):
    def worker_pids(self) -> list[int]:
        return [int(p) for p in re.findall(r"worker \d+ started, pid (\d+)", self.text)]


async def start_with_workers(upstream: Upstream, workers: int) -> tuple[Any, _Twistd, str]:
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


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0) until reaped; it does not serve.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"


@pytest_twisted.ensureDeferred
async def test_workers_serve_the_port_get_sighup_and_stop_together(upstream: Upstream) -> None:
    process, watch, url = await start_with_workers(upstream, workers=2)
    [worker] = watch.worker_pids()
    try:
        # Both processes answer on the one port: health names the pid that
        # answered, and fresh connections reach each of them.
        answered: set[int] = set()
        for _ in range(200):
            response, body = await fetch(url + "/_proxy/healthz")
            answered.add(json.loads(body)["pid"])
            if len(answered) == 2:
                break
        assert answered == {process.pid, worker}

        process.signalProcess("HUP")
        await until(lambda: watch.text.count("received SIGHUP") == 2, 10)

        process.signalProcess("TERM")
        assert await timeout(watch.ended, 20) == 0, watch.text
        await until(lambda: not process_alive(worker), 10)
    finally:
        if watch.ended.called is False:
            process.signalProcess("KILL")
    assert "Traceback" not in watch.text


@pytest_twisted.ensureDeferred
async def test_worker_stops_when_its_supervisor_is_killed(upstream: Upstream) -> None:
    process, watch, url = await start_with_workers(upstream, workers=2)
    [worker] = watch.worker_pids()
    try:
        process.signalProcess("KILL")
        await timeout(watch.ended, 10)
        await until(lambda: not process_alive(worker), 15)
    finally:
        if process_alive(worker):
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


def test_plain_tcp_port_gets_one_reuseport_socket_per_process() -> None:
    from copilot_proxy.app import reuseport_sockets

    fds = reuseport_sockets("tcp:0:interface=127.0.0.1:backlog=16", 3)
    assert fds is not None and len(fds) == 3
    sockets = [socket.socket(fileno=fd) for fd in fds]
    try:
        ports = {s.getsockname() for s in sockets}
        assert len(ports) == 1  # one address, three accept queues
        for s in sockets:
            assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
            assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    finally:
        for s in sockets:
            s.close()


def test_other_endpoints_share_one_socket_instead() -> None:
    from copilot_proxy.app import reuseport_sockets

    for description in (
        "unix:/run/copilot-proxy.sock",
        "systemd:domain=INET:index=0",
        "tcp6:8080:interface=\\:\\:1",
        "tcp:8080:interface=\\:\\:1",
        "ssl:8443:privateKey=key.pem",
        "tcp:8080:reuse=1",
    ):
        assert reuseport_sockets(description, 2) is None, description


def test_port_in_use_fails_even_against_a_reuseport_listener() -> None:
    from copilot_proxy.app import reuseport_sockets

    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match="cannot listen"):
            reuseport_sockets(f"tcp:{port}:interface=127.0.0.1", 2)
