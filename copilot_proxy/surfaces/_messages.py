"""
The Anthropic surface: C{POST /v1/messages} and C{/v1/messages/count_tokens}.

L{MessagesRelay} is an L{UpstreamRelay} with a different request and body:
it maps the model name, translates the request to chat/completions, and
translates the answer back, incrementally for streams.  Everything else
(token, timeouts, backpressure, client disconnects, shutdown, access log) is
the relay's own machinery.  Errors on this surface use Anthropic's shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse
from twisted.web.server import Request

from ..relay import COMPLETE, REFUSED, RefuseRequest, UpstreamRelay, upstream_error_text
from ..wire import Surface, classify, json_answer, parse_json_body
from . import _anthropic
from ._anthropic import MessagesStream, TranslationError
from ._catalog import ModelCatalog
from ._model_names import resolve_model

TRANSLATE = "translate"
NATIVE = "native"
MODES = (TRANSLATE, NATIVE)

# Headers meant for Anthropic's own API; chat/completions has no use for them.
_ANTHROPIC_ONLY = (
    b"anthropic-version",
    b"anthropic-beta",
    b"anthropic-dangerous-direct-browser-access",
)


@dataclass(frozen=True)
class MessagesSettings:
    """
    How the Anthropic surface behaves.

    @ivar catalog: the upstream's model list, for name mapping.
    @ivar mode: L{TRANSLATE} (every model, through chat/completions) or
        L{NATIVE} (Claude models go to the upstream's own C{/v1/messages}
        untranslated; other models are still translated).
    @ivar model_map: C{--model-map} entries, tried before anything else.
    """

    catalog: ModelCatalog
    mode: str = TRANSLATE
    model_map: Mapping[str, str] = field(default_factory=dict)


class _AnthropicErrors(UpstreamRelay):
    """A relay whose own errors are in Anthropic's shape."""

    def _error_body(self, status: int, message: str, code: str) -> bytes:
        return _anthropic.error_body(status, message)


class MessagesRelay(_AnthropicErrors):
    """One C{POST /v1/messages}, translated or forwarded natively."""

    def __init__(self, *args: Any, settings: MessagesSettings) -> None:
        super().__init__(*args)
        self._settings = settings
        self._payload: dict[str, Any] = {}
        self._asked = ""
        self._target_model = ""
        self._native = False
        self._stream: MessagesStream | None = None

    def _send(self, authorization: bytes) -> Deferred[None]:
        request = self._request
        if request.method != b"POST":
            raise RefuseRequest(405, "use POST /v1/messages", "method_not_allowed")
        content: Any = request.content
        content.seek(0)
        payload = parse_json_body(content.read())
        if not isinstance(payload, dict) or not isinstance(payload.get("model"), str):
            raise RefuseRequest(
                400, "the body must be a JSON object with a model", "invalid_request"
            )
        self._payload = payload
        self._asked = payload["model"]
        d: Deferred[Any] = self._settings.catalog.ids()
        self._pending = d
        d.addCallback(self._resolve)
        d.addCallback(lambda _: UpstreamRelay._send(self, authorization))
        return d

    def _resolve(self, known: list[str]) -> None:
        model = resolve_model(self._asked, known, self._settings.model_map)
        if model is None:
            if known:
                raise RefuseRequest(
                    404,
                    f"model {self._asked!r} is not served by this Copilot account; "
                    f"known models: {', '.join(known)} (map others with --model-map from=to)",
                    "model_not_found",
                )
            model = self._asked  # the list is unavailable: let the upstream judge
        self._target_model = model
        self._native = self._settings.mode == NATIVE and model.lower().startswith("claude")

    def _prepare(self, body: bytes) -> tuple[bytes, bytes, object]:
        if self._native:
            native = dict(self._payload, model=self._target_model)
            query = self._request.uri.partition(b"?")[2]
            target = b"/v1/messages" + (b"?" + query if query else b"")
            return target, json.dumps(native).encode(), self._payload
        try:
            translated = _anthropic.chat_request(self._payload, self._target_model)
        except TranslationError as e:
            raise RefuseRequest(400, str(e), "invalid_request") from None
        return b"/chat/completions", json.dumps(translated).encode(), self._payload

    def _upstream_headers(self, authorization: bytes, payload: object) -> Headers:
        headers = super()._upstream_headers(authorization, payload)
        headers.setRawHeaders(b"content-type", [b"application/json"])
        if self._native:
            # Thinking needs this beta upstream; a client (or --header) that
            # names its own betas is trusted to have listed what it needs.
            if _anthropic.wants_thinking(self._payload) and not headers.hasHeader(
                b"anthropic-beta"
            ):
                headers.setRawHeaders(b"anthropic-beta", [_anthropic.INTERLEAVED_THINKING])
        else:
            for name in _ANTHROPIC_ONLY:
                headers.removeHeader(name)
            # The answer is parsed here, so it must not come compressed.
            headers.setRawHeaders(b"accept-encoding", [b"identity"])
        return headers

    def _begin_body(self, response: IResponse) -> None:
        code = response.code
        if not 200 <= code < 300 and not response.headers.hasHeader(b"content-encoding"):
            self._collect(response, lambda body: self._explain(code, body))
            return
        if self._native or not 200 <= code < 300:
            super()._begin_body(response)
            return
        outgoing = self._request.responseHeaders
        for name in (b"content-length", b"content-type", b"content-encoding"):
            outgoing.removeHeader(name)
        if self._payload.get("stream") is not True:
            self._collect(response, self._whole_message)
            return
        outgoing.setRawHeaders(b"content-type", [b"text/event-stream; charset=utf-8"])
        outgoing.setRawHeaders(b"cache-control", [b"no-cache"])
        self._request.write(b"")
        self._stream = MessagesStream(self._asked)
        if self._options.sse_keepalive is not None:
            self._keep_alive(self._options.sse_keepalive)
        self._writer = self._translate
        self._streaming = True
        response.deliverBody(self)

    def _translate(self, data: bytes) -> None:
        assert self._stream is not None
        events = self._stream.feed(data)
        if events:
            self._request.write(events)

    def _at_event_boundary(self) -> bool:
        # Only whole translated events are ever written.
        return self._stream is not None or super()._at_event_boundary()

    def _body_done(self) -> None:
        if self._stream is not None:
            self._request.write(self._stream.end())
            return
        super()._body_done()

    def _whole_message(self, body: bytes) -> bytes:
        try:
            message = _anthropic.message_response(json.loads(body), self._asked)
        except (ValueError, TranslationError):
            self._request.setResponseCode(502)
            return _anthropic.error_body(502, "the upstream answer was not a chat completion")
        return json.dumps(message).encode()

    def _explain(self, code: int, body: bytes) -> bytes:
        if code == 466:
            text = self._options.copilot.stale_version_message(upstream_error_text(body))
        else:
            text = upstream_error_text(body)
        return _anthropic.error_body(code, text)


class CountTokensRelay(_AnthropicErrors):
    """C{POST /v1/messages/count_tokens}, answered here with an estimate."""

    def start(self) -> None:
        self._inflight.add(self)
        request = self._request
        content: Any = request.content
        content.seek(0)
        body: bytes = content.read()
        self._bytes_in = len(body)
        try:
            count = _anthropic.estimate_tokens(parse_json_body(body))
        except TranslationError as e:
            self._respond_error(400, str(e), "invalid_request", REFUSED)
            return
        request.write(json_answer(request, 200, json.dumps({"input_tokens": count}).encode()))
        request.finish()
        self._end(COMPLETE)


def route_surfaces(
    make_relay: Callable[[Request], UpstreamRelay],
    relay_args: tuple[Any, ...],
    settings: MessagesSettings,
) -> Callable[[Request], UpstreamRelay]:
    """
    Send each request to the relay of its surface: the Anthropic paths to
    theirs, everything else to C{make_relay}.

    @param relay_args: the arguments after the request that L{UpstreamRelay}
        takes, shared by every relay of this proxy.
    """

    def make(request: Request) -> UpstreamRelay:
        surface = classify(request.uri)
        if surface is Surface.MESSAGES:
            return MessagesRelay(request, *relay_args, settings=settings)
        if surface is Surface.COUNT_TOKENS:
            return CountTokensRelay(request, *relay_args)
        return make_relay(request)

    return make
