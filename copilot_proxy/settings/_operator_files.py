"""
The one way the proxy reads a file an operator names (client keys, tokens, a
CA bundle) or finds in the state directory (the stored login, the editor
plugins' logins): a regular file, never more than a cap.

These files are read on the reactor thread (at start, on SIGHUP, every few
seconds while a new login is awaited), so a read must return soon and cost
little whatever the path leads to.  A FIFO would block C{open()} until a
writer comes, freezing the proxy; C{/dev/zero} would be read until the kernel
kills the process.  So the file is opened non-blocking (a FIFO's open returns
at once), the opened descriptor is checked to be a regular file, and at most
C{limit + 1} bytes are read, so even a file that grows while it is read
cannot take more.  Symbolic links are followed: a link to a regular file
(systemd credentials, configuration management) is normal.

No Twisted here: plain C{os}, usable before the reactor exists.
"""

from __future__ import annotations

import errno
import os
import stat

#: The most a client keys file may hold.
KEYS_FILE_LIMIT = 1024 * 1024
#: The most a token file may hold: C{--token-file}, C{--github-token-file},
#: the stored login, an editor plugin's C{apps.json} or C{hosts.json}.
TOKEN_FILE_LIMIT = 1024 * 1024
#: The most a C{--upstream-ca} PEM bundle may hold (the whole Mozilla trust
#: store is about 200 KiB).
CA_BUNDLE_LIMIT = 4 * 1024 * 1024

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class UnfitFile(OSError):
    """
    The path leads to something other than a regular file, or to one over
    the cap.  Like any L{OSError}, its C{strerror} says why in words fit to
    follow C{"cannot read ... PATH: "}, and C{filename} is the path; it never
    holds any of the file's content.
    """


def _size(count: int) -> str:
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if count >= scale and count % scale == 0:
            return f"{count // scale} {unit}"
    return f"{count} bytes"


def _refuse_kind(path: str, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    target = os.path.realpath(path)
    where = f"it leads to {target}, " if target != os.path.abspath(path) else "it is "
    raise UnfitFile(errno.EINVAL, f"{where}{kind}, not a regular file", path)


def _refuse_size(path: str, size: int, limit: int) -> None:
    if size > limit:
        raise UnfitFile(errno.EFBIG, f"it is larger than {_size(limit)}", path)


def read_operator_file(path: str | os.PathLike[str], limit: int) -> bytes:
    """
    The content of a regular file of at most C{limit} bytes.

    Returns or fails at once whatever C{path} leads to: a FIFO, a device, a
    directory or a socket is refused without reading a byte, and no more
    than C{limit + 1} bytes are ever read.

    @raise UnfitFile: when C{path} is not a regular file or holds more than
        C{limit} bytes.
    @raise OSError: when it cannot be opened or read (missing, no
        permission...), as C{open()} would.
    """
    name = os.fspath(path)
    # Looked at first so that a device is never even opened (opening some
    # has effects); the descriptor is checked again below, as the path may
    # change in between.
    _refuse_kind(name, os.stat(name).st_mode)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    fd = os.open(name, flags)
    try:
        opened = os.fstat(fd)
        _refuse_kind(name, opened.st_mode)
        _refuse_size(name, opened.st_size, limit)
        chunks = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 64 * 1024))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    # The file grew between fstat() and the last read.
    _refuse_size(name, len(data), limit)
    return data
