"""
Error bodies in the shapes clients parse.

The OpenAI SDKs read C{{"error": {"message", "type", "code"}}} from any
non-2xx answer and show the message to the user, so every error the proxy
itself produces uses that shape and says what to do about it.
"""

from __future__ import annotations

import json


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
