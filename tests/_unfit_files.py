"""
Files an operator may name by mistake that are no files to read: a FIFO, a
link to C{/dev/zero}, one far too large; and the guards that make a test of
them fail, rather than hang or exhaust memory, against a proxy that reads them
carelessly.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from twisted.internet.error import ProcessExitedAlready

from ._helpers import until
from ._twistd import TWISTD, Twistd

#: Bigger than any cap the proxy puts on the files it reads (4 MiB).
OVERSIZED = 5 * 1024 * 1024
#: What a process under test may allocate beyond what it has: reading
#: C{/dev/zero} whole fails with L{MemoryError} there instead of taking the
#: machine down.
HEADROOM = 256 * 1024 * 1024


def make_fifo(path: Path) -> Path:
    """A FIFO with no writer: C{open()} for reading blocks on it for ever."""
    os.mkfifo(path)
    return path


def link_to_dev_zero(path: Path) -> Path:
    """A symbolic link to C{/dev/zero}: reading it whole never ends."""
    path.symlink_to("/dev/zero")
    return path


def padded(path: Path, first_line: str, size: int = OVERSIZED) -> Path:
    """A file that starts with a usable C{first_line} and goes on with C{size} bytes of comment."""
    path.write_text(first_line + "\n# " + "x" * size + "\n")
    return path


#: The unfit files a test makes, by name: each takes the path to create and
#: the usable line an oversized file starts with.
UNFIT: dict[str, Callable[[Path, str], Path]] = {
    "fifo": lambda path, line: make_fifo(path),
    "dev-zero": lambda path, line: link_to_dev_zero(path),
    "oversized": padded,
}

#: What the proxy says about each of them.
REFUSAL = {
    "fifo": "it is a FIFO (named pipe), not a regular file",
    "dev-zero": "it leads to /dev/zero, a character device, not a regular file",
    "oversized": "it is larger than",
}


def replace_with(path: Path, kind: str, line: str) -> Path:
    """Put an unfit file of C{kind} where C{path} is."""
    path.unlink(missing_ok=True)
    return UNFIT[kind](path, line)


def _data_in_use() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmData:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmData in /proc/self/status")


@contextmanager
def bounded(seconds: float = 5.0, memory: int = HEADROOM) -> Iterator[None]:
    """
    Fail the code inside with L{AssertionError} if it blocks for more than
    C{seconds} (a C{SIGALRM} interrupts a blocked C{open()}), and with
    L{MemoryError} if it allocates more than C{memory} bytes.
    """

    def expired(signum: int, frame: FrameType | None) -> Any:
        raise AssertionError(f"still blocked after {seconds} s")

    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    cap = _data_in_use() + memory
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# Sets the memory cap, then becomes twistd: the cap holds across exec.
_CAPPED = (
    "import os, resource, sys; "
    "limit = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_DATA, (limit, limit)); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)


class CappedTwistd(Twistd):
    """C{twistd} whose memory is capped, and whose stderr is kept apart."""

    def __init__(self) -> None:
        super().__init__()
        self.stderr: list[bytes] = []

    def errReceived(self, data: bytes) -> None:
        super().errReceived(data)
        self.stderr.append(data)

    def processEnded(self, reason: Any) -> None:
        # A stop that timed out has fired C{ended} already.
        if not self.ended.called:
            super().processEnded(reason)

    def kill(self) -> None:
        """SIGKILL unless the process is gone, even after a stop that timed out."""
        if self.process.pid is not None:
            try:
                self.signal("KILL")
            except ProcessExitedAlready:
                pass

    @classmethod
    def start(cls, args: list[str], env: dict[str, str]) -> CappedTwistd:
        """Start C{twistd args} with at most L{HEADROOM} * 2 bytes of data."""
        return cls.spawn(
            ["-c", _CAPPED, str(2 * HEADROOM), TWISTD, *args], env, executable=sys.executable
        )

    @property
    def error_lines(self) -> list[str]:
        """What it wrote to stderr, line by line."""
        return b"".join(self.stderr).decode("utf-8", "replace").strip().splitlines()


async def failed_start(
    args: list[str], env: dict[str, str], seconds: float = 30.0
) -> CappedTwistd:
    """
    Run C{twistd args}, which must end by itself within C{seconds} (it is
    killed otherwise, and the test fails); the ended run.
    """
    run = CappedTwistd.start(args, env)
    try:
        await until(lambda: run.ended.called, seconds=seconds, step=0.05)
    except AssertionError:
        raise AssertionError(f"still running after {seconds} s:\n{run.text}") from None
    finally:
        run.kill()
    return run
