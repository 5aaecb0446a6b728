"""
Running the real C{twistd} command (or the C{copilot-proxy} script) the way a
user or an init system does: a clean environment, a free port, and a process
whose output, exit status and readiness a test can wait on.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError, ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.web.iweb import IResponse

from ._helpers import fetch, timeout, until

TWISTD = str(Path(sys.executable).with_name("twistd"))


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def clean_env(*, home: Path | None = None, **extra: str) -> dict[str, str]:
    """
    This process's environment without anything that would configure the
    proxy behind a test's back: no C{COPILOT_*} or C{PROXY_*} setting, no
    corporate proxy variable, no systemd state directory, and no stored or
    editor login of the person running the tests.

    @param home: if given, C{HOME} is C{home/home} and C{XDG_CONFIG_HOME} is
        C{home/config}, so a test can plant or inspect a stored login there;
        otherwise C{XDG_CONFIG_HOME} names a directory that does not exist.
    @param extra: variables set last, over everything else.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COPILOT_", "PROXY_")) and not k.upper().endswith("_PROXY")
    }
    env.pop("STATE_DIRECTORY", None)
    if home is None:
        env["XDG_CONFIG_HOME"] = "/nonexistent/copilot-proxy-tests"
    else:
        env["HOME"] = str(home / "home")
        env["XDG_CONFIG_HOME"] = str(home / "config")
    env.update(extra)
    return env


_Run = TypeVar("_Run", bound="Twistd")


async def run_twistd(
    args: list[str], env: dict[str, str], cwd: Path | None = None, seconds: float = 30.0
) -> tuple[bytes, bytes, int]:
    """
    Run C{twistd} with C{args} to its end: its stdout, stderr and exit code.
    A daemonizing run ends when the daemon has reported its start.
    """
    path = None if cwd is None else str(cwd)
    result: tuple[bytes, bytes, int] = await timeout(
        getProcessOutputAndValue(TWISTD, args, env=env, path=path), seconds
    )
    return result


class Daemon:
    """
    C{twistd copilot-proxy} going into the background, as an init script
    runs it, with its pid file and log file in C{directory}.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pidfile = directory / "proxy.pid"
        self.logfile = directory / "proxy.log"

    async def start(
        self, *options: str, env: dict[str, str], seconds: float = 30.0
    ) -> tuple[bytes, bytes, int]:
        """Run C{twistd} with the proxy's C{options}; see L{run_twistd}."""
        args = [f"--pidfile={self.pidfile}", f"--logfile={self.logfile}", "copilot-proxy"]
        return await run_twistd([*args, *options], env, self.directory, seconds)

    @property
    def pid(self) -> int:
        return int(self.pidfile.read_text())

    async def gone(self, seconds: float = 10.0) -> None:
        """Wait until the daemon has ended and removed its pid file."""
        await until(lambda: not self.pidfile.exists(), seconds=seconds)


class Twistd(ProcessProtocol):
    """
    One run of a command: everything it wrote, and C{ended}, which fires with
    its exit code (C{None} if a signal ended it).
    """

    def __init__(self) -> None:
        self.output: list[bytes] = []
        """What it wrote to stdout and stderr, interleaved as it came."""
        self.stdout: list[bytes] = []
        """What it wrote to stdout alone."""
        self.ended: Deferred[int | None] = Deferred()
        self.process: Any = None

    @classmethod
    def spawn(
        cls: type[_Run],
        args: list[str],
        env: dict[str, str],
        executable: str = TWISTD,
        childFDs: dict[int, Any] | None = None,
    ) -> _Run:
        """Start C{executable} with C{args} (C{argv[0]} is added) in C{env}."""
        run = cls()
        run.process = reactor.spawnProcess(
            run, executable, [executable, *args], env=env, childFDs=childFDs
        )
        return run

    def outReceived(self, data: bytes) -> None:
        self.output.append(data)
        self.stdout.append(data)

    def errReceived(self, data: bytes) -> None:
        self.output.append(data)

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(reason.value.exitCode)

    @property
    def text(self) -> str:
        """All its output so far, as text."""
        return b"".join(self.output).decode("utf-8", "replace")

    @property
    def pid(self) -> int:
        pid: int = self.process.pid
        return pid

    def signal(self, name: str) -> None:
        """Send it a signal by name (C{"TERM"}, C{"HUP"}, C{"KILL"}...)."""
        self.process.signalProcess(name)

    async def stop(self, seconds: float = 20.0) -> int | None:
        """SIGTERM (unless it has ended already), then its exit code."""
        if not self.ended.called:
            self.signal("TERM")
        code: int | None = await timeout(self.ended, seconds)
        return code

    def kill(self) -> None:
        """SIGKILL unless it has already ended: for a test's C{finally}."""
        if not self.ended.called:
            try:
                self.signal("KILL")
            except ProcessExitedAlready:
                pass

    async def serving(
        self, url: str, seconds: float = 30.0, headers: dict[str, str] | None = None
    ) -> tuple[IResponse, bytes]:
        """
        The first answer to a GET of C{url} once the port accepts connections.
        Fails with the output so far if the process ends first or the port
        stays closed for C{seconds}.
        """
        deadline = reactor.seconds() + seconds
        while not self.ended.called:
            try:
                return await fetch(url, headers=headers)
            except ConnectionRefusedError:
                if reactor.seconds() > deadline:
                    raise AssertionError(
                        f"{url} not served in {seconds} s:\n{self.text}"
                    ) from None
                await deferLater(reactor, 0.05, lambda: None)
        raise AssertionError(f"ended with {self.ended.result} before serving:\n{self.text}")
