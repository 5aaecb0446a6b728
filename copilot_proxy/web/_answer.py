"""
Answers the proxy makes itself: a JSON body in the client's own error shape,
with no C{Server} header of ours, logged like every other exchange.
"""

from __future__ import annotations

from twisted.web.server import Request

from ..wire import Outcome, classify, error_for
from ._access_line import log_access


def json_answer(request: Request, status: int, body: bytes) -> bytes:
    """
    Set C{request} up to answer C{status} with the JSON C{body}, made by the
    proxy itself (so no C{Server} header of ours), and return the body for
    the caller to write or return from C{render}.
    """
    request.setResponseCode(status)
    request.responseHeaders.removeHeader(b"server")
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"content-length", b"%d" % (len(body),))
    return body


def respond_error(
    request: Request,
    status: int,
    message: str,
    error_type: str,
    code: str,
    headers: dict[bytes, bytes] | None = None,
) -> bytes:
    """
    Answer C{request} with a JSON error made by the proxy itself and log it
    as refused; returns the body for C{render} to return.  The body has the
    shape the caller's SDK parses: Anthropic's on the Messages surface,
    OpenAI's everywhere else.
    """
    body = error_for(classify(request.uri), status, message, error_type, code)
    json_answer(request, status, body)
    for name, value in (headers or {}).items():
        request.setHeader(name, value)
    log_access(request, Outcome.REFUSED, status=status, sent=len(body))
    return body
