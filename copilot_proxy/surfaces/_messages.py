"""
The Anthropic surface: C{POST /v1/messages}, as a strategy of the relay.

L{MessagesStrategy} maps the model name, then either translates the request
to chat/completions and the answer back (incrementally for streams), or, in
native mode for Claude models, sends it to the upstream's own
C{/v1/messages} untranslated.  Everything else (token, timeouts,
backpressure, client disconnects, shutdown, access log) is the exchange's.
Errors on this surface use Anthropic's shape.
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

from ..relay import (
    BodySink,
    Collect,
    RefuseRequest,
    RelayOptions,
    Translate,
    UpstreamCall,
    default_sink,
)
from ..settings import MessagesMode
from ..wire import BodyFacts, anthropic_error, parse_json_body, safe_model, upstream_error_text
from . import _anthropic
from ._anthropic import MessagesStream, TranslationError
from ._catalog import ModelCatalog
from ._model_names import resolve_model

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
    @ivar mode: how Claude models are served (other models are always
        translated).
    @ivar model_map: C{--model-map} entries, tried before anything else.
    """

    catalog: ModelCatalog
    mode: MessagesMode = MessagesMode.TRANSLATE
    model_map: Mapping[str, str] = field(default_factory=dict)


def _unreadable() -> bytes:
    return anthropic_error(502, "the upstream answer was cut short or was not a chat completion")


class AnthropicErrors:
    """The part of a strategy that shapes the proxy's own errors as Anthropic's."""

    def error_body(self, status: int, message: str, code: str) -> bytes:
        return anthropic_error(status, message)


class MessagesStrategy(AnthropicErrors):
    """One C{POST /v1/messages}, translated or forwarded natively."""

    def __init__(self, settings: MessagesSettings) -> None:
        self._settings = settings
        self._asked = ""
        self._target_model = ""
        self._native = False
        # Read from the body once; the parsed body is not kept past prepare.
        self._stream = False
        self._thinking = False

    def prepare(self, request: Request, body: bytes) -> Deferred[UpstreamCall]:
        if request.method != b"POST":
            raise RefuseRequest(405, "use POST /v1/messages", "method_not_allowed")
        payload = parse_json_body(body)
        if not isinstance(payload, dict) or not isinstance(payload.get("model"), str):
            raise RefuseRequest(
                400, "the body must be a JSON object with a model", "invalid_request"
            )
        self._asked = payload["model"]
        self._stream = payload.get("stream") is True
        self._thinking = _anthropic.wants_thinking(payload)
        query = request.uri.partition(b"?")[2]
        d: Deferred[list[str]] = self._settings.catalog.ids()
        return d.addCallback(self._call, payload, query)

    def _call(self, known: list[str], payload: dict[str, Any], query: bytes) -> UpstreamCall:
        self._resolve(known)
        model = safe_model(self._asked)
        facts = BodyFacts.of(payload)
        if self._native:
            native = dict(payload, model=self._target_model)
            target = b"/v1/messages" + (b"?" + query if query else b"")
            return UpstreamCall(target, json.dumps(native).encode(), facts, model)
        try:
            translated = _anthropic.chat_request(payload, self._target_model)
        except TranslationError as e:
            raise RefuseRequest(400, str(e), "invalid_request") from None
        body = json.dumps(translated).encode()
        return UpstreamCall(b"/chat/completions", body, facts, model)

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
        self._native = self._settings.mode is MessagesMode.NATIVE and model.lower().startswith(
            "claude"
        )

    def upstream_headers(self, headers: Headers, call: UpstreamCall) -> None:
        headers.setRawHeaders(b"content-type", [b"application/json"])
        if self._native:
            # Thinking needs this beta upstream; a client (or --header) that
            # names its own betas is trusted to have listed what it needs.
            if self._thinking and not headers.hasHeader(b"anthropic-beta"):
                headers.setRawHeaders(b"anthropic-beta", [_anthropic.INTERLEAVED_THINKING])
        else:
            for name in _ANTHROPIC_ONLY:
                headers.removeHeader(name)
            # The answer is parsed here, so it must not come compressed.
            headers.setRawHeaders(b"accept-encoding", [b"identity"])

    def sink(
        self,
        request: Request,
        response: IResponse,
        options: RelayOptions,
        stop: Callable[[], None],
    ) -> BodySink:
        code = response.code
        ok = 200 <= code < 300
        if not ok and not response.headers.hasHeader(b"content-encoding"):
            return Collect(request, lambda body: self._explain(options, code, body), _unreadable)
        if self._native or not ok:
            return default_sink(request, response, options)
        if not self._stream:
            outgoing = request.responseHeaders
            for name in (b"content-length", b"content-type", b"content-encoding"):
                outgoing.removeHeader(name)
            return Collect(request, self._whole_message, _unreadable)
        stream = MessagesStream(self._asked)
        return Translate(request, stream.feed, stream.end, stream.cut, stop)

    def _whole_message(self, body: bytes) -> bytes:
        # Any failure to read it (not JSON, too deep, ill-typed) is the
        # Collect sink's to answer, with a 502.
        return json.dumps(_anthropic.message_response(json.loads(body), self._asked)).encode()

    def _explain(self, options: RelayOptions, code: int, body: bytes) -> bytes:
        text = upstream_error_text(body)
        if code == 466:
            text = options.copilot.stale_version_message(text)
        return anthropic_error(code, text)
