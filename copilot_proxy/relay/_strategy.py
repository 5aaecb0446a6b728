"""
What differs between client surfaces: a strategy handed to the exchange.

The exchange does what every request needs (token, send, replay on 401,
timeouts, backpressure, the end); a L{RelayStrategy} decides what to send
upstream and how the answer reaches the client.  L{PASSTHROUGH} is the
OpenAI surface's: the request and the answer cross untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse
from twisted.web.server import Request

from ..wire import (
    BodyFacts,
    model_from_body,
    openai_error,
    parse_json_body,
    safe_model,
    upstream_error_text,
    upstream_target,
)
from ._context import RelayOptions, UpstreamCall
from ._sinks import BodySink, Collect, Passthrough

# The status the Copilot API gives to stale version headers.
STALE_VERSION = 466


class RelayStrategy(Protocol):
    """How one surface shapes its exchanges."""

    def prepare(self, request: Request, body: bytes) -> Deferred[UpstreamCall]:
        """
        What to send upstream for C{request}, whose body is C{body}; called
        once per exchange, after a token was had.

        @raise RefuseRequest: (or fail with it) to answer the client with an
            error instead.
        """

    def upstream_headers(self, headers: Headers, call: UpstreamCall) -> None:
        """Adjust the upstream request headers, Copilot's already added."""

    def sink(
        self,
        request: Request,
        response: IResponse,
        options: RelayOptions,
        stop: Callable[[], None],
    ) -> BodySink:
        """
        How the upstream body reaches the client, once the status and the
        headers have been copied to C{request}.

        @param stop: what a sink calls when it cannot go on (an upstream
            body it cannot read): the exchange stops the upstream and cuts
            the client.
        """

    def error_body(self, status: int, message: str, code: str) -> bytes:
        """The JSON body of an error the proxy makes itself."""

    @property
    def model(self) -> str | None:
        """The model asked for, once read (checked to look like one), for the log."""

    @property
    def reroutes(self) -> bool:
        """Whether an upstream 400 should be shown to L{reroute} first."""

    def reroute(self, status: int, body: bytes) -> UpstreamCall | None:
        """
        After an upstream refusal (its status and small body), nothing having
        reached the client yet: the call to send instead, once, or L{None} to
        pass the refusal on.
        """


def default_sink(request: Request, response: IResponse, options: RelayOptions) -> BodySink:
    """
    The answer as it came, except a stale-version refusal (466), which is
    rewritten to say which options to set.
    """
    if response.code == STALE_VERSION and not response.headers.hasHeader(b"content-encoding"):

        def explain(body: bytes) -> bytes:
            return openai_error(
                options.copilot.stale_version_message(upstream_error_text(body)),
                "invalid_request_error",
                "copilot_version_headers_stale",
            )

        return Collect(request, explain, _unreadable_answer)
    return Passthrough(request, response)


def _unreadable_answer() -> bytes:
    return openai_error(
        "the upstream answer was cut short or could not be read", "proxy_error", "upstream_error"
    )


class OpenAIPassthrough:
    """The OpenAI surface: the request goes as it came, after the C{/v1} alias."""

    def prepare(self, request: Request, body: bytes) -> Deferred[UpstreamCall]:
        # The body is parsed once, here, and only for a POST: the Copilot
        # headers and the log's model field both read it.  The answer is
        # never parsed on this path.
        payload = parse_json_body(body) if request.method == b"POST" else None
        if isinstance(payload, dict):
            model = safe_model(payload.get("model"))
        else:
            model = model_from_body(body, request.getHeader(b"content-type"))
        facts = BodyFacts.of(payload)
        return succeed(UpstreamCall(upstream_target(request.uri), body, facts, model))

    def upstream_headers(self, headers: Headers, call: UpstreamCall) -> None:
        pass

    def sink(
        self,
        request: Request,
        response: IResponse,
        options: RelayOptions,
        stop: Callable[[], None],
    ) -> BodySink:
        return default_sink(request, response, options)

    def error_body(self, status: int, message: str, code: str) -> bytes:
        return openai_error(message, "proxy_error", code)

    reroutes = False
    model = None

    def reroute(self, status: int, body: bytes) -> UpstreamCall | None:
        return None


#: The strategy of every OpenAI-surface exchange (it holds no state).
PASSTHROUGH: RelayStrategy = OpenAIPassthrough()
