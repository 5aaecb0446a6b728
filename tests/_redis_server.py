"""
A real C{redis-server} for the tests, started and stopped by them: on a
private loopback port and a unix socket in a temporary directory, with
nothing saved to disk.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests._twistd import free_port

#: The password of the module-scoped server of tests/conftest.py.
MODULE_REDIS_PASSWORD = "s3cret-redis-password-for-tests"

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def redis_available() -> bool:
    return os.access(REDIS_SERVER, os.X_OK)


#: Skip marker for a machine without Redis (CI installs it: .ci/run).
needs_redis = pytest.mark.skipif(
    not redis_available(), reason="redis-server is not installed (apt-get install redis-server)"
)


class RedisServer:
    """
    One C{redis-server} process.  L{stop} and L{start} again keep the port,
    so clients see an outage and a return; L{pause} and L{resume} make it
    slow (SIGSTOP), as a server swapping or stuck would be.
    """

    def __init__(self, password: str | None = None, tls: tuple[Path, Path] | None = None) -> None:
        """
        @param tls: a key and certificate: the server also serves TLS on
            L{tls_port}.
        """
        self.directory = Path(tempfile.mkdtemp(prefix="redis-test-"))
        self.port = free_port()
        self.tls = tls
        self.tls_port = free_port() if tls is not None else None
        self.socket = str(self.directory / "redis.sock")
        self.password = password
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"unix://{auth}{self.socket}?db=0"

    def start(self) -> None:
        args = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--unixsocket",
            self.socket,
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        if self.tls is not None:
            key, cert = self.tls
            args += ["--tls-port", str(self.tls_port), "--tls-auth-clients", "no"]
            args += ["--tls-cert-file", str(cert), "--tls-key-file", str(key)]
        self._process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ping():
                return
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode}")
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start within 10 s")

    def ping(self) -> bool:
        """Whether the server answers (any answer: NOAUTH counts)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return bool(s.recv(64))
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """One command through C{redis-cli}, for checks from outside the proxy."""
        cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        auth = ["-a", self.password, "--no-auth-warning"] if self.password else []
        return subprocess.run(
            [cli, "-p", str(self.port), *auth, *args], capture_output=True, check=True, timeout=10
        ).stdout

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def pause(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
