"""
Which request targets the proxy serves.

The upstream URL is the configured base plus the client's target as sent, so
the target must be a plain origin-form path: anything that could make the
proxy a forward proxy (absolute-form, C{CONNECT}) or step out of the base's
path prefix once some server along the way normalizes it (C{//host/...},
C{..} segments, percent-encoded dots and slashes, backslashes) is refused
before it costs the upstream anything.  Pure: bytes in, verdict out.
"""

from __future__ import annotations

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


def _escapes(path: bytes) -> bool:
    if path.startswith(b"//") or b"\\" in path:
        return True
    lowered = path.lower()
    if b"%2f" in lowered or b"%5c" in lowered:
        return True
    if any(c < 0x20 or c == 0x7F for c in path):
        return True
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
