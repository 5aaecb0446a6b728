"""
Which request heads the proxy serves: targets, methods and body framing.

The upstream URL is the configured base plus the client's target as sent, so
the target must be a plain origin-form path: anything that could make the
proxy a forward proxy (absolute-form, C{CONNECT}) or step out of the base's
path prefix once some server along the way normalizes it (C{//host/...},
C{..} segments, percent-encoded dots and slashes, backslashes) is refused
before it costs the upstream anything.

Methods that echo the request (C{TRACE}, C{TRACK}) are never forwarded: the
upstream request carries the proxy's Copilot token.  A body is framed one
way only (RFC 9112 section 6): one final C{chunked} coding or a
C{Content-Length}, never both, never another coding, with chunk sizes no
longer than 16 hex digits; an HTTP/1.1 head names exactly one C{Host}.
Whatever two HTTP parsers could read two ways (request smuggling) is
refused.  Pure: bytes in, verdict out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import unquote_to_bytes

# A target is decoded this many times at most when looking for dot segments,
# so that double (and triple) percent-encoding is seen through.
_DECODE_ROUNDS = 3

NOT_A_FORWARD_PROXY = (
    "not_a_forward_proxy",
    "this proxy only serves origin-form requests such as POST /chat/completions",
)
PATH_ESCAPE = (
    "invalid_path",
    "the request path must not contain '.' or '..' segments, a leading '//', "
    "backslashes, control characters or encoded slashes",
)


# Control characters, which no request target may hold.
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


def _escapes(path: bytes) -> bool:
    if path.startswith(b"//") or b"\\" in path:
        return True
    lowered = path.lower()
    if b"%2f" in lowered or b"%5c" in lowered:
        return True
    if _CONTROL.search(path) is not None:
        return True
    if b"." not in path:
        return False
    for segment in path.split(b"/"):
        # "..;x" is ".." to servlet containers.
        if segment.split(b";", 1)[0] in (b".", b".."):
            return True
    return False


def target_problem(method: bytes, uri: bytes) -> tuple[str, str] | None:
    """
    Why a request target must be refused with 400, as (error code, message),
    or L{None} when it may go upstream.  The query string is not examined: it
    is opaque to routing.
    """
    if method == b"CONNECT" or not uri.startswith(b"/"):
        return NOT_A_FORWARD_PROXY
    path = uri.split(b"?", 1)[0].split(b"#", 1)[0]
    for _ in range(_DECODE_ROUNDS):
        if _escapes(path):
            return PATH_ESCAPE
        decoded = unquote_to_bytes(path)
        if decoded == path:
            break
        path = decoded
    else:
        if _escapes(path):
            return PATH_ESCAPE
    return None


#: The methods the proxy serves, for C{Allow}: it forwards every method but
#: the ones refused here, and answers C{OPTIONS *} itself.
ALLOWED_METHODS = b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

# A server echoes a TRACE (TRACK is IIS's) back with every header it got; the
# upstream would get the proxy's Authorization, and echo the Copilot token.
_ECHOING_METHODS = frozenset({b"TRACE", b"TRACK"})

METHOD_NOT_ALLOWED = (
    "method_not_allowed",
    "TRACE and TRACK are not served: they would echo the proxy's credentials",
)


def method_problem(method: bytes) -> tuple[str, str] | None:
    """
    Why a method must be refused with 405 (answered with C{Allow:
    ALLOWED_METHODS}), as (error code, message), or L{None}.  Methods are
    case-sensitive (RFC 9110 section 9.1): C{trace} is not C{TRACE}.
    """
    return METHOD_NOT_ALLOWED if method in _ECHOING_METHODS else None


#: The longest chunk size accepted, in hex digits: 16 digits already say more
#: than 2**64 - 1 bytes.  Past that, parsers that overflow or truncate read
#: the size another way than those that do not.
MAX_CHUNK_SIZE_DIGITS = 16

BAD_FRAMING = (
    "bad_framing",
    "the request body must be framed by one Content-Length or by "
    "'Transfer-Encoding: chunked' alone (HTTP/1.1), with chunk sizes of at "
    f"most {MAX_CHUNK_SIZE_DIGITS} hex digits",
)
BAD_HOST = (
    "bad_host",
    "an HTTP/1.1 request must have exactly one Host header, naming a host and an optional port",
)

# uri-host [ ":" port ], loosely: reg-name, IPv4 and IP-literal characters.
# No '/', '@', '?', '#' or whitespace, which would make it a URL of its own.
_HOST = re.compile(rb"[A-Za-z0-9\-._~!$&'()*+,;=:%\[\]]*")


def framing_problem(
    version: bytes,
    hosts: Sequence[bytes],
    content_lengths: Sequence[bytes],
    transfer_encodings: Sequence[bytes],
) -> tuple[str, str] | None:
    """
    Why a request head must be refused with 400 (and the connection closed,
    the body unread) for how it frames the request, as (error code,
    message), or L{None}.

    @param version: C{HTTP/1.1} or C{HTTP/1.0}.
    @param hosts: the values of every C{Host} field line.
    @param content_lengths: the values of every C{Content-Length} line.
    @param transfer_encodings: the values of every C{Transfer-Encoding} line.
    """
    if len(hosts) > 1 or (version == b"HTTP/1.1" and not hosts):
        return BAD_HOST
    if hosts and not _HOST.fullmatch(hosts[0]):
        return BAD_HOST
    if transfer_encodings:
        codings = [c.strip().lower() for v in transfer_encodings for c in v.split(b",")]
        # An HTTP/1.0 message with Transfer-Encoding has faulty framing
        # (RFC 9112 section 6.1), whatever it says.
        if version != b"HTTP/1.1" or codings != [b"chunked"] or content_lengths:
            return BAD_FRAMING
    return None


_HEX = b"0123456789abcdefABCDEF"
# Past this a chunk-size line is broken anyway (Twisted stops at 1024 bytes).
_MAX_SIZE_LINE = 4096


class ChunkSizeGuard:
    """
    Follows a chunked request body just far enough to see every chunk-size
    line, and says when one has more than L{MAX_CHUNK_SIZE_DIGITS} hex
    digits.  Fed the body's bytes as they arrive, split anywhere.

    It does not decode the body and judges nothing else: once a size line is
    malformed in another way (the HTTP parser refuses it), or the last chunk
    has come, it stops looking (L{done}).
    """

    def __init__(self) -> None:
        self._line = bytearray()
        # Bytes of chunk data, plus its CRLF, still to skip.
        self._skip = 0
        self.done = False

    def feed(self, data: bytes) -> bool:
        """Look at the next bytes; L{False} once a chunk size is too long."""
        at, end = 0, len(data)
        while at < end and not self.done:
            if self._skip:
                taken = min(self._skip, end - at)
                self._skip -= taken
                at += taken
                continue
            newline = data.find(b"\n", at)
            stop = end if newline == -1 else newline + 1
            self._line += data[at:stop]
            at = stop
            head = bytes(self._line[: MAX_CHUNK_SIZE_DIGITS + 1])
            if len(head) - len(head.lstrip(_HEX)) > MAX_CHUNK_SIZE_DIGITS:
                return False
            if newline == -1:
                self.done = len(self._line) > _MAX_SIZE_LINE
                continue
            self._size_line(bytes(self._line))
            self._line.clear()
        return True

    def _size_line(self, line: bytes) -> None:
        digits = line[:-2].split(b";", 1)[0]
        if not line.endswith(b"\r\n") or not digits or digits.strip(_HEX):
            self.done = True
            return
        size = int(digits, 16)
        if size == 0:
            # The last chunk: trailers follow, then the next request.
            self.done = True
        else:
            self._skip = size + 2
