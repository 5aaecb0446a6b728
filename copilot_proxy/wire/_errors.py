"""
Error bodies in the shapes clients parse.

The OpenAI SDKs read C{{"error": {"message", "type", "code"}}} from any
non-2xx answer and show the message to the user, so every error the proxy
itself produces uses that shape and says what to do about it.
"""

from __future__ import annotations

import json

from twisted.web.server import Request


def openai_error(message: str, error_type: str, code: str | None = None) -> bytes:
    """
    An OpenAI-shaped JSON error body.

    @param message: one sentence for a person: what went wrong and, where
        possible, what to do.  Never a token or other secret.
    @param error_type: a stable machine-readable category.
    @param code: a finer machine-readable code, or L{None}.
    """
    body = {"error": {"message": message, "type": error_type, "code": code}}
    return json.dumps(body).encode("utf-8")


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
