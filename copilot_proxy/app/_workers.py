"""
Several processes serving one port: C{--workers N}.

The first process binds the port and serves it; it then starts N - 1 worker
processes, each handed a listening socket as file descriptor 3, which it
adopts (L{adopt_listening_socket}).  Which socket:

  - on a plain TCP port (a bare C{--port} number, C{tcp:...}), one socket
    per process, all bound to the address with C{SO_REUSEPORT}
    (L{reuseport_sockets}): the kernel gives each its own accept queue and
    spreads new connections by a hash of their addresses.  One shared
    queue was tried first and measured: the process that wakes first takes
    what is waiting, so a burst of keep-alive clients landed 1/63 or 11/53
    on two workers and two workers used one core's worth of CPU;
  - on any other endpoint (UNIX sockets, systemd socket activation) the
    one bound socket, inherited by every worker, each accepting at most a
    few connections per wake-up (L{accept_in_turns}).

C{SO_REUSEPORT}'s known costs, and what is done about them: a stale
instance of the same user could share the port silently, so the address is
first bound without it and a port in use fails the start as before; a
socket's queue goes with its worker, so the first process keeps each
worker's socket open while the service runs, and connections queued for a
worker that died wait for its restart instead of being reset.

Each worker is a whole proxy with its own upstream connection pool, token
source, client keys, rate limits and caches: nothing is shared between
processes but the metrics files.  L{WorkerPool} forwards signals: SIGTERM
(through the service stopping) and SIGHUP (through L{WorkerPool.signal_all})
reach every worker, and a worker whose supervisor dies stops by itself
(L{ParentWatch}).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import AdoptedStreamServerEndpoint
from twisted.internet.interfaces import IListeningPort, IReadDescriptor
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..settings import ConfigError

_log = Logger(namespace="copilot_proxy.workers")

# The file descriptor a worker finds the listening socket on.
WORKER_LISTEN_FD = 3

# A worker that dies is started again after this many seconds, doubled for
# each quick death in a row (up to the cap), so a worker that cannot start
# does not spin.
_RESTART_DELAY = 1.0
_RESTART_CAP = 30.0
_STABLE_SECONDS = 10.0


def adopt_listening_socket(reactor: Any, fd: int, factory: Any) -> IListeningPort:
    """
    Serve C{factory} on an inherited, already listening stream socket.

    @param fd: the socket's file descriptor; it is closed once adopted (the
        port holds its own duplicate).
    @raise ConfigError: when C{fd} is not a listening stream socket.
    """
    try:
        probe = socket.socket(fileno=fd)
    except OSError as e:
        raise ConfigError(f"--listen-fd {fd}: not a socket ({e.strerror})") from None
    try:
        family = probe.family
        listening = probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        kind = probe.type
    finally:
        probe.detach()
    if kind != socket.SOCK_STREAM or not listening:
        raise ConfigError(f"--listen-fd {fd}: not a listening stream socket")
    outcome: list[Any] = []
    AdoptedStreamServerEndpoint(reactor, fd, family).listen(factory).addBoth(outcome.append)
    if isinstance(outcome[0], Failure):
        raise ConfigError(f"--listen-fd {fd}: {outcome[0].getErrorMessage()}")
    port: IListeningPort = outcome[0]
    return port


# Connections one process accepts per wake-up when several share a socket.
ACCEPTS_PER_WAKEUP = 8


def accept_in_turns(port: IListeningPort) -> None:
    """
    Make C{port} accept at most L{ACCEPTS_PER_WAKEUP} connections per wake-up.

    Every process sharing the socket is woken when connections wait, and
    Twisted's TCP port accepts as many as it can in one go (up to its
    C{numberAccepts}, which grows under load): a burst of new keep-alive
    connections would all land on whichever process woke first and stay
    there.  Taking a few at a time makes the processes take turns, and a
    busy one, slower back to its reactor loop, takes fewer.
    """
    accept = type(port).doRead  # type: ignore[attr-defined]

    def do_read() -> object:
        port.numberAccepts = ACCEPTS_PER_WAKEUP  # type: ignore[attr-defined]
        return accept(port)

    port.doRead = do_read  # type: ignore[attr-defined]


class _Worker(ProcessProtocol):
    def __init__(self, pool: WorkerPool, slot: int) -> None:
        self.pool = pool
        self.slot = slot
        self.ended: Deferred[None] = Deferred()
        self.started = 0.0
        self.pid: int | None = None

    def processEnded(self, reason: Failure) -> None:
        self.pool._ended(self, reason)
        self.ended.callback(None)


class WorkerPool(Service):
    """
    Starts and keeps C{count} worker processes running while the service
    runs; stopping it sends them SIGTERM and waits for them to drain.

    @ivar argv: the worker command; C{argv[0]} is the executable.
    """

    def __init__(
        self,
        reactor: Any,
        count: int,
        listen_fd: int | Sequence[int],
        argv: Sequence[str],
        env: Mapping[str, str],
        kill_after: float,
        on_exit: Callable[[int], object] | None = None,
    ) -> None:
        """
        @param listen_fd: the listening socket every worker inherits, or one
            socket per worker (see L{reuseport_sockets}).
        @param on_exit: called with the pid of each worker that exits.
        """
        self._reactor = reactor
        self._on_exit = on_exit
        self._count = count
        self._owns_fds = not isinstance(listen_fd, int)
        self._listen_fds = [listen_fd] * count if isinstance(listen_fd, int) else list(listen_fd)
        self.argv = list(argv)
        self._env = dict(env)
        self._kill_after = kill_after
        self._workers: dict[int, _Worker] = {}
        self._delays: dict[int, float] = {}
        self._restarts: dict[int, Any] = {}

    def pids(self) -> list[int]:
        """The process ids of the workers now running."""
        return [w.transport.pid for w in self._workers.values() if w.transport is not None]

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        for slot in range(self._count):
            self._spawn(slot)

    def _spawn(self, slot: int) -> None:
        self._restarts.pop(slot, None)
        worker = _Worker(self, slot)
        worker.started = self._reactor.seconds()
        # 0: a pipe the worker watches; it reads end-of-file when we are
        # gone.  1, 2: our own output, for the worker's log lines.
        self._reactor.spawnProcess(
            worker,
            self.argv[0],
            self.argv,
            env=self._env,
            childFDs={0: "w", 1: 1, 2: 2, WORKER_LISTEN_FD: self._listen_fds[slot]},
        )
        self._workers[slot] = worker
        pid = worker.transport.pid if worker.transport is not None else None
        worker.pid = pid
        _log.info("worker {slot} started, pid {pid}", slot=slot + 1, pid=pid)

    def _ended(self, worker: _Worker, reason: Failure) -> None:
        if self._workers.get(worker.slot) is worker:
            del self._workers[worker.slot]
        if self._on_exit is not None and worker.pid is not None:
            self._on_exit(worker.pid)
        if not self.running:
            return
        lived = self._reactor.seconds() - worker.started
        delay = _RESTART_DELAY
        if lived < _STABLE_SECONDS:
            delay = min(_RESTART_CAP, self._delays.get(worker.slot, _RESTART_DELAY / 2) * 2)
        self._delays[worker.slot] = delay
        _log.warn(
            "worker {slot} exited ({reason}); starting it again in {delay:g} s",
            slot=worker.slot + 1,
            reason=reason.getErrorMessage(),
            delay=delay,
        )
        self._restarts[worker.slot] = self._reactor.callLater(delay, self._spawn, worker.slot)

    def signal_all(self, name: str) -> None:
        """Send signal C{name} (C{"HUP"}, C{"TERM"}...) to every worker."""
        for worker in list(self._workers.values()):
            if worker.transport is None:
                continue
            try:
                worker.transport.signalProcess(name)
            except Exception:  # noqa: S110 - it exited meanwhile
                pass

    def stopService(self) -> Deferred[Any]:
        super().stopService()  # type: ignore[no-untyped-call]
        if self._owns_fds:
            # The workers' own sockets: with our copies closed too, the
            # kernel stops queueing connections for each one as soon as its
            # worker stops listening, instead of leaving them to wait.
            for fd in self._listen_fds:
                os.close(fd)
            self._owns_fds = False
        for call in self._restarts.values():
            call.cancel()
        self._restarts.clear()
        waiting = [w.ended for w in self._workers.values()]
        self.signal_all("TERM")
        kill = self._reactor.callLater(self._kill_after, self.signal_all, "KILL")
        done: Deferred[Any] = DeferredList(waiting)

        def cancel_kill(result: object) -> object:
            if kill.active():
                kill.cancel()
            return result

        return done.addBoth(cancel_kill)


@implementer(IReadDescriptor)
class ParentWatch:
    """
    Calls C{on_gone} once the supervising process has gone: the write end of
    the pipe on C{fd} (our stdin) closes with it.
    """

    def __init__(self, reactor: Any, fd: int, on_gone: Callable[[], object]) -> None:
        self._reactor = reactor
        self._fd = fd
        self._on_gone = on_gone
        self._fired = False
        os.set_blocking(fd, False)

    def start(self) -> None:
        self._reactor.addReader(self)

    def fileno(self) -> int:
        return self._fd

    def doRead(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._reactor.removeReader(self)
            self._gone()

    def connectionLost(self, reason: Failure) -> None:
        # The reactor calls this instead of doRead on a hang-up.
        self._gone()

    def _gone(self) -> None:
        if self._fired:
            return
        self._fired = True
        self._on_gone()

    def logPrefix(self) -> str:
        return "parent-watch"


def _tcp_address(description: str) -> tuple[str, int, int] | None:
    """
    (interface, port, backlog) of a plain C{tcp:} endpoint description, or
    L{None} for anything else (other endpoints, IPv6 or unknown options).
    """
    parts = description.split(":")
    if parts[0] != "tcp" or len(parts) < 2 or "\\" in description:
        return None
    interface, port, backlog = "", None, 50
    for index, part in enumerate(parts[1:]):
        key, sep, value = part.partition("=")
        if not sep and index == 0:
            key, value = "port", part
        if key == "port" and value.isdigit():
            port = int(value)
        elif key == "interface":
            interface = value
        elif key == "backlog" and value.isdigit():
            backlog = int(value)
        else:
            return None
    if port is None or port > 65535:
        return None
    return interface, port, backlog


def reuseport_sockets(description: str, count: int) -> list[int] | None:
    """
    C{count} listening sockets on one TCP address, each with C{SO_REUSEPORT},
    as file descriptors: one for each process of C{--workers}.

    The kernel gives each socket its own accept queue and spreads new
    connections over them by a hash of their addresses, so keep-alive
    clients are shared evenly, which one shared queue does not manage (the
    process that wakes first takes what is waiting).  Before binding, the
    address is tried without C{SO_REUSEPORT}: a port in use, even by a stale
    instance that would otherwise share it silently, fails the start.

    @return: the descriptors, or L{None} when C{description} is not a plain
        TCP endpoint (the processes then share one inherited socket).
    @raise ConfigError: when the address cannot be bound.
    """
    address = _tcp_address(description)
    # Not every platform's socket module has SO_REUSEPORT.
    if address is None or not hasattr(socket, "SO_REUSEPORT"):
        return None
    interface, port, backlog = address
    host = interface or "0.0.0.0"  # noqa: S104 - only what the description asks for
    try:
        if port:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((host, port))
        sockets: list[socket.socket] = []
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.listen(backlog)
    except OSError as e:
        for sock in locals().get("sockets", []):
            sock.close()
        raise ConfigError(f"cannot listen on {description}: {e.strerror}") from None
    fds = [sock.detach() for sock in sockets]
    for fd in fds:
        os.set_inheritable(fd, False)
    return fds


def worker_count(value: str, listen: str) -> int:
    """
    Check C{--workers}: a whole number from 1, and more than one only on an
    endpoint whose socket can be handed to other processes as is.
    """
    try:
        count = int(value)
    except ValueError:
        raise ConfigError(f"--workers {value!r} is not a whole number") from None
    if count < 1:
        raise ConfigError("--workers must be 1 or more")
    if count > 1 and listen.startswith("ssl:"):
        raise ConfigError(
            "--workers above 1 cannot share an ssl: port; terminate TLS in front of the "
            "proxy or run one process"
        )
    return count


def listen_fd(value: str | None) -> int | None:
    """Check C{--listen-fd}: absent, or a file descriptor number from 3."""
    if value is None:
        return None
    if not value.isdigit() or int(value) < 3:
        raise ConfigError(f"--listen-fd {value!r} must be a file descriptor number from 3")
    return int(value)


def worker_argv(
    executable: str, twistd_args: Sequence[str], plugin_args: Sequence[str]
) -> list[str]:
    """
    The command of a worker: the same interpreter running twistd in the
    foreground with no pid file, the plugin with the given options, and
    C{--workers=1 --listen-fd=3} after them (a later option wins).

    @param plugin_args: the options the proxy was started with.
    """
    return [
        executable,
        "-c",
        "from twisted.scripts.twistd import run; run()",
        "--nodaemon",
        "--pidfile=",
        *twistd_args,
        "copilot-proxy",
        *plugin_args,
        "--workers=1",
        f"--listen-fd={WORKER_LISTEN_FD}",
    ]
