"""
Every client surface, routed by the catalog: a relay strategy that sends each
request to an endpoint its model lists, translating when that endpoint is not
the client's own shape.

The client's shape, when the model lists it, is passthrough: the body goes as
it came (less any reasoning this proxy made for another endpoint, which this
one would refuse) and the answer comes back untouched, with no per-chunk
work.  Else the request is decoded into the neutral model and encoded for
the chosen endpoint, and the answer is translated back as it streams.  An
upstream 400 that says the endpoint is wrong marks that pair refused,
refreshes the catalog, and the exchange sends the request once more
elsewhere, before anything reached the client.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, succeed
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
from ..translate import (
    INTERLEAVED_THINKING,
    Capabilities,
    Shape,
    StreamTranslation,
    TranslationError,
    codec_for,
    wants_thinking,
)
from ..wire import (
    BodyFacts,
    anthropic_error,
    model_from_body,
    openai_error,
    parse_json_body,
    safe_model,
    upstream_error_text,
    upstream_target,
)
from ._catalog import ModelCatalog
from ._model_names import resolve_model
from ._routing import PREFERENCE, ModelEntry, choose, is_endpoint_refusal

# Headers meant for Anthropic's own API; other endpoints have no use for them.
_ANTHROPIC_ONLY = (
    b"anthropic-version",
    b"anthropic-beta",
    b"anthropic-dangerous-direct-browser-access",
)


@dataclass(frozen=True)
class RouterSettings:
    """
    How requests are routed.

    @ivar catalog: the upstream's models and the endpoints each lists.
    @ivar mode: C{translate} keeps Anthropic clients off native Messages.
    @ivar model_map: C{--model-map} entries for Anthropic model names.
    """

    catalog: ModelCatalog
    mode: MessagesMode = MessagesMode.NATIVE
    model_map: Mapping[str, str] = field(default_factory=dict)


class RoutedStrategy:
    """One request of client shape C{client}, routed by its model."""

    reroutes = True

    @property
    def model(self) -> str | None:
        return safe_model(self._asked)

    def __init__(self, client: Shape, settings: RouterSettings) -> None:
        self._client = client
        self._settings = settings
        self._endpoint = client
        self._request: Request | None = None
        self._asked = ""
        self._model = ""
        self._entry: ModelEntry | None = None
        self._refused: set[Shape] = set()
        self._stream = False
        self._thinking = False

    # The request -------------------------------------------------------

    def prepare(self, request: Request, body: bytes) -> Deferred[UpstreamCall]:
        if self._client is Shape.MESSAGES and request.method != b"POST":
            raise RefuseRequest(405, "use POST /v1/messages", "method_not_allowed")
        self._request = request
        if request.method != b"POST":
            return succeed(self._as_it_came(body, None))
        # The catalog first (it is almost always at hand), then the body is
        # parsed and routed at once: no parsed body waits for a catalog fetch.
        d: Deferred[dict[str, ModelEntry]] = self._settings.catalog.for_request(request).entries()
        return d.addCallback(self._read, body)

    def _read(self, entries: dict[str, ModelEntry], body: bytes) -> UpstreamCall:
        payload = parse_json_body(body)
        if not isinstance(payload, dict) or not isinstance(payload.get("model"), str):
            if self._client is Shape.MESSAGES:
                raise RefuseRequest(
                    400, "the body must be a JSON object with a model", "invalid_request"
                )
            return self._as_it_came(body, payload)
        self._asked = payload["model"]
        return self._route(entries, payload, body)

    def _as_it_came(self, body: bytes, payload: object) -> UpstreamCall:
        # Not a request this proxy can route: the upstream judges it.
        request = self._request
        assert request is not None
        model = model_from_body(body, request.getHeader(b"content-type"))
        return UpstreamCall(upstream_target(request.uri), body, BodyFacts.of(payload), model)

    def _route(
        self, entries: dict[str, ModelEntry], payload: dict[str, Any], body: bytes
    ) -> UpstreamCall:
        self._asked = payload["model"]
        self._stream = payload.get("stream") is True
        self._model = self._resolve(self._asked, entries)
        entry = self._entry = entries.get(self._model)
        if entry is not None and entry.disabled:
            raise RefuseRequest(
                400,
                f"model {self._model!r} is disabled for this Copilot account; "
                "enable it in the Copilot settings on GitHub",
                "model_disabled",
            )
        endpoint = choose(self._client, entry, self._refused, self._native())
        if endpoint is None:
            assert entry is not None
            where = ", ".join(entry.listed) or "no endpoint this proxy can use"
            raise RefuseRequest(
                400,
                f"model {self._model!r} cannot be served to a {self._client} client: "
                f"it is served on {where}",
                "unsupported_api_for_model",
            )
        self._endpoint = endpoint
        return self._call(payload, body)

    def _native(self) -> bool:
        return self._settings.mode is not MessagesMode.TRANSLATE

    def _resolve(self, asked: str, entries: Mapping[str, ModelEntry]) -> str:
        if self._client is not Shape.MESSAGES:
            return asked
        model = resolve_model(asked, entries, self._settings.model_map)
        if model is None:
            if entries:
                raise RefuseRequest(
                    404,
                    f"model {asked!r} is not served by this Copilot account; "
                    f"known models: {', '.join(entries)} (map others with --model-map from=to)",
                    "model_not_found",
                )
            return asked  # the list is unavailable: let the upstream judge
        return model

    def _call(self, payload: dict[str, Any], body: bytes) -> UpstreamCall:
        request = self._request
        assert request is not None
        facts = BodyFacts.of(payload)
        logged = safe_model(self._asked)
        if self._endpoint is self._client:
            # Reasoning this proxy made for another endpoint (the client
            # switched models) is refused here: it goes, the rest as it came.
            own = codec_for(self._client).without_foreign_carriers(payload)
            if own is not None:
                payload, body = own, json.dumps(own).encode()
            if self._client is not Shape.MESSAGES:
                return UpstreamCall(upstream_target(request.uri), body, facts, logged)
            served = safe_model(self._model)
            self._thinking = wants_thinking(payload)
            if self._model != self._asked:
                body = json.dumps(dict(payload, model=self._model)).encode()
            query = request.uri.partition(b"?")[2]
            target = b"/v1/messages" + (b"?" + query if query else b"")
            return UpstreamCall(target, body, facts, logged, served)
        try:
            neutral = codec_for(self._client).decode_request(payload)
        except TranslationError as e:
            raise RefuseRequest(400, str(e), "invalid_request") from None
        caps = self._entry.caps if self._entry is not None else Capabilities()
        encoded = codec_for(self._endpoint).encode_request(neutral, self._model, caps)
        self._thinking = self._endpoint is Shape.MESSAGES and neutral.thinking
        return UpstreamCall(
            self._endpoint.value.encode(),
            json.dumps(encoded).encode(),
            facts,
            logged,
            safe_model(self._model),
        )

    def upstream_headers(self, headers: Headers, call: UpstreamCall) -> None:
        if self._endpoint is Shape.MESSAGES:
            headers.setRawHeaders(b"content-type", [b"application/json"])
            if not headers.hasHeader(b"anthropic-version"):
                headers.setRawHeaders(b"anthropic-version", [b"2023-06-01"])
            # A client (or --header) that names its own betas is trusted to
            # have listed what it needs.
            if self._thinking and not headers.hasHeader(b"anthropic-beta"):
                headers.setRawHeaders(b"anthropic-beta", [INTERLEAVED_THINKING])
        elif self._client is Shape.MESSAGES:
            for name in _ANTHROPIC_ONLY:
                headers.removeHeader(name)
        if self._endpoint is not self._client:
            headers.setRawHeaders(b"content-type", [b"application/json"])
            # The answer is translated here, so it must not come compressed.
            headers.setRawHeaders(b"accept-encoding", [b"identity"])

    # The answer --------------------------------------------------------

    def sink(
        self,
        request: Request,
        response: IResponse,
        options: RelayOptions,
        stop: Callable[[], None],
    ) -> BodySink:
        code = response.code
        ok = 200 <= code < 300
        encoded = response.headers.hasHeader(b"content-encoding")
        anthropic = self._client is Shape.MESSAGES
        if not ok and not encoded and anthropic:
            return Collect(request, lambda body: self._explain(options, code, body), _unreadable)
        if self._endpoint is self._client or not ok:
            return default_sink(request, response, options)
        upstream, client = codec_for(self._endpoint), codec_for(self._client)
        if self._stream:
            stream = StreamTranslation(upstream, client, self._asked)
            return Translate(request, stream.feed, stream.end, stream.cut, stop)
        outgoing = request.responseHeaders
        for name in (b"content-length", b"content-type", b"content-encoding"):
            outgoing.removeHeader(name)

        def whole(body: bytes) -> bytes:
            answer = upstream.decode_answer(json.loads(body))
            return json.dumps(client.encode_answer(answer, self._asked)).encode()

        return Collect(request, whole, _unreadable if anthropic else _unreadable_openai)

    def _explain(self, options: RelayOptions, code: int, body: bytes) -> bytes:
        text = upstream_error_text(body)
        if code == 466:
            text = options.copilot.stale_version_message(text)
        return anthropic_error(code, text)

    def error_body(self, status: int, message: str, code: str) -> bytes:
        if self._client is Shape.MESSAGES:
            return anthropic_error(status, message)
        return openai_error(message, "proxy_error", code)

    # The second try ----------------------------------------------------

    def reroute(self, status: int, body: bytes) -> UpstreamCall | None:
        """
        After an upstream refusal: the call to send instead, or L{None} to
        give the client the refusal as it came.
        """
        request = self._request
        if request is None or not is_endpoint_refusal(status, body):
            return None
        self._refused.add(self._endpoint)
        self._settings.catalog.for_request(request).refresh()
        endpoint = choose(self._client, self._entry, self._refused, self._native())
        if self._entry is None:
            # Not in the catalog: try the others in order of preference.
            claude = self._model.lower().startswith("claude")
            left = [
                e
                for e in PREFERENCE
                if e not in self._refused and (e is not Shape.MESSAGES or claude)
            ]
            endpoint = left[0] if left else None
        if endpoint is None:
            return None
        self._endpoint = endpoint
        content: Any = request.content
        content.seek(0)
        original: bytes = content.read()
        payload = parse_json_body(original)
        assert isinstance(payload, dict)
        return self._call(payload, original)


def _unreadable() -> bytes:
    return anthropic_error(502, "the upstream answer was cut short or could not be translated")


def _unreadable_openai() -> bytes:
    return openai_error(
        "the upstream answer was cut short or could not be translated",
        "proxy_error",
        "upstream_error",
    )
