"""
Which surface a request target belongs to, and where it goes upstream.

The Copilot API serves the OpenAI paths without the C{/v1} prefix that the
OpenAI SDKs put in their base URL; C{/v1/messages} is the Anthropic surface,
not an alias.  Pure: bytes in, bytes out.
"""

from __future__ import annotations

from enum import Enum

# OpenAI paths served upstream without /v1: the path itself and anything below.
_V1_ALIASES: tuple[bytes, ...] = (
    b"/v1/chat/completions",
    b"/v1/models",
    b"/v1/embeddings",
    b"/v1/responses",
)


class Surface(Enum):
    """How the proxy treats a request."""

    #: Forwarded as it came (after the C{/v1} alias), streamed untouched.
    OPENAI = "openai"
    #: An Anthropic Messages request.
    MESSAGES = "messages"
    #: An Anthropic token-count request, answered by the proxy itself.
    COUNT_TOKENS = "count_tokens"


def _under(path: bytes, prefix: bytes) -> bool:
    return path == prefix or path.startswith(prefix + b"/")


def classify(uri: bytes) -> Surface:
    """The surface of an origin-form request target (path and query)."""
    path = uri.partition(b"?")[0].rstrip(b"/")
    if path == b"/v1/messages/count_tokens":
        return Surface.COUNT_TOKENS
    if path == b"/v1/messages":
        return Surface.MESSAGES
    return Surface.OPENAI


def upstream_target(uri: bytes) -> bytes:
    """
    The target to request upstream for an OpenAI-surface request: the
    client's path and query, with C{/v1} dropped from the aliased paths.
    """
    path, question, query = uri.partition(b"?")
    for prefix in _V1_ALIASES:
        if _under(path, prefix):
            return path[3:] + question + query
    return uri
