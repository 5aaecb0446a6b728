"""
Error bodies in the shapes clients parse.

The OpenAI SDKs read C{{"error": {"message", "type", "code"}}} from any
non-2xx answer and show the message to the user; the Anthropic SDKs read
C{{"type": "error", "error": {"type", "message"}}}.  Every error the proxy
itself produces uses the shape of the surface it was asked on and says what
to do about it.  Pure: values in, bytes out.
"""

from __future__ import annotations

import json

from ._routes import Surface


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


#: Anthropic's error types by HTTP status.
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error(status: int, message: str) -> bytes:
    """An Anthropic-shaped JSON error body for an HTTP status."""
    kind = ANTHROPIC_ERROR_TYPES.get(
        status, "api_error" if status >= 500 else "invalid_request_error"
    )
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return json.dumps(body).encode("utf-8")


def error_for(surface: Surface, status: int, message: str, error_type: str, code: str) -> bytes:
    """
    The error body a client of C{surface} parses: Anthropic's on the
    Messages surface, OpenAI's everywhere else.
    """
    if surface is Surface.OPENAI:
        return openai_error(message, error_type, code)
    return anthropic_error(status, message)


def upstream_error_text(body: bytes) -> str:
    """
    The message of an upstream error body: JSON C{error.message} or
    C{message}, else the body as text.
    """
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        payload = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(payload.get("message"), str):
            return str(payload["message"])
    return body.decode("utf-8", "replace")
