"""
The proxy as a twistd process: what its signals mean, how it reports a start
that can only succeed once the reactor runs, and the exit status it ends with.

twistd owns daemonizing, pid files and the reactor; these services adjust
the three places where its defaults do not fit a credential-holding proxy:
SIGTERM should drain and exit 0, SIGHUP should reload rather than kill, and a
start that fails after the reactor started (the first token exchange) should
still end in one line and a non-zero status.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.logger import ILogObserver, Logger
from twisted.python.components import Componentized
from twisted.python.failure import Failure

_log = Logger(namespace="copilot_proxy")


class StopCleanlyOnTerm(Service):
    """
    Make SIGTERM a clean stop that exits 0.

    By default twistd re-raises the stopping signal on itself once the reactor
    has stopped, so a SIGTERM'd daemon ends with status 143 even after a full,
    graceful drain.  A requested stop that drained is a success; this handler
    stops the reactor the same way but without recording the signal.
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        # Twisted installs its own handlers when the reactor starts running;
        # ours goes in right after, and so replaces Twisted's for SIGTERM.
        self._reactor.callWhenRunning(signal.signal, signal.SIGTERM, self._on_term)

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        self._reactor.callFromThread(self._stop)

    def _stop(self) -> None:
        _log.info("received SIGTERM, stopping")
        if self._reactor.running:
            self._reactor.stop()


class ReloadOnHup(Service):
    """
    Make SIGHUP a reload (C{systemctl reload}, logrotate) instead of death.

    Without a handler SIGHUP ends the process.  Here it runs each reload hook
    in the reactor thread, in order; a hook that fails is logged and the
    others still run.  Other parts add hooks with L{add}: the log file is
    reopened this way, so logrotate can move it away.
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._hooks: list[Callable[[], object]] = []

    def add(self, hook: Callable[[], object]) -> None:
        """Run C{hook} on every SIGHUP."""
        self._hooks.append(hook)

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._reactor.callWhenRunning(signal.signal, signal.SIGHUP, self._on_hup)

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self._reactor.callFromThread(self.reload)

    def reload(self) -> None:
        """Run every reload hook now."""
        _log.info("received SIGHUP, reloading")
        for hook in self._hooks:
            try:
                hook()
            except Exception:
                _log.failure("a reload step failed")


class ProxyApplication(MultiService):
    """
    The top service; when given an observer it hands it to twistd's
    application as its L{ILogObserver}, which twistd then logs to instead of
    building its own.
    """

    def __init__(self, observer: ILogObserver | None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._observer = observer

    def setServiceParent(self, parent: Any) -> None:
        if self._observer is not None and isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, self._observer)
        super().setServiceParent(parent)  # type: ignore[no-untyped-call]


def fail_running(reactor: Any, message: str) -> None:
    """
    Fail a start after the reactor has started (the first token exchange
    failed): log the reason, stop, and exit 1 once twistd has cleaned up.

    twistd exits 0 whenever its reactor stops, with no way for a plugin to
    choose the status.  So an C{atexit} hook, which runs after twistd has
    removed its pid file and stopped logging, repeats the reason on stderr
    (seen in the foreground; a daemon's stderr is /dev/null, its log has
    the line) and ends the process with status 1.  A daemonized twistd's
    parent learns the reason through L{ReportStartWhenReady} and exits 1;
    the daemon itself was reparented to init, which reaps it: no zombie.
    """
    _log.critical("cannot start: {reason}", reason=message)
    atexit.register(_exit_failed, message)
    if reactor.running:
        reactor.stop()


class ReportStartWhenReady(Service):
    """
    Make a daemonized twistd report its start only once the first Copilot
    token is at hand, so that C{twistd copilot-proxy} with a revoked login
    exits 1 with the reason instead of 0.

    twistd's parent process waits on a pipe for the daemon to write C{0}
    (started) or C{1 <reason>}; it writes C{0} itself right after
    C{privilegedStartService}, before the reactor (and so the first
    exchange) runs.  This service takes the pipe out of twistd's config in
    C{privilegedStartService} and writes the outcome itself.  Without a
    pipe (C{-n}, or a twistd that does it differently) it does nothing.
    """

    def __init__(self, twistd_config: Any, ready: Deferred[None]) -> None:
        self._config = twistd_config
        self._ready = ready

    def privilegedStartService(self) -> None:
        super().privilegedStartService()  # type: ignore[no-untyped-call]
        pipe = self._config.pop("statusPipe", None) if self._config is not None else None
        if not isinstance(pipe, int):
            return

        def report(message: bytes) -> None:
            try:
                os.write(pipe, message[:100])
                os.close(pipe)
            except OSError:
                pass

        def failed(failure: Failure) -> None:
            reason = failure.getErrorMessage().encode("ascii", "backslashreplace")
            report(b"1 " + reason)

        self._ready.addCallbacks(lambda _: report(b"0"), failed)


def _exit_failed(message: str) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: S110 - exiting anyway
            pass
    original = sys.__stderr__
    if original is not None:
        try:
            original.write(f"copilot-proxy: {message}\n")
            original.flush()
        except Exception:  # noqa: S110 - exiting anyway
            pass
    os._exit(1)


def stop_reactor(reactor: Any) -> None:
    from twisted.internet.error import ReactorNotRunning

    _log.info("the supervising process is gone, stopping")
    try:
        reactor.stop()
    except ReactorNotRunning:
        pass
