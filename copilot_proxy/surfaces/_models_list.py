"""
C{GET /v1/models}, honestly: the upstream's list with, for each model, the
endpoints it is served on and the client surfaces it can be used from; in
Anthropic's list shape when an Anthropic client asks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse
from twisted.web.server import Request

from ..relay import PASSTHROUGH, BodySink, Collect, RelayOptions, UpstreamCall, default_sink
from ..translate import Shape
from ..wire import openai_error
from ._routing import choose, model_entry

#: The client surfaces, by the path a client asks on.
SURFACES = {
    "/v1/chat/completions": Shape.CHAT,
    "/v1/responses": Shape.RESPONSES,
    "/v1/messages": Shape.MESSAGES,
}


def wants_anthropic_list(headers: Headers) -> bool:
    """Whether the client is an Anthropic SDK (it always sends its version)."""
    return headers.hasHeader(b"anthropic-version")


def annotate(document: Any) -> Any:
    """The OpenAI list with each entry's endpoints and usable surfaces added."""
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list):
        return document
    for raw in data:
        entry = model_entry(raw)
        if entry is None:
            continue
        raw["endpoints"] = list(entry.listed) if entry.endpoints is not None else None
        raw["surfaces"] = [
            path
            for path, shape in SURFACES.items()
            if not entry.disabled and choose(shape, entry) is not None
        ]
    return document


def anthropic_list(document: Any) -> dict[str, Any]:
    """The models in Anthropic's list shape (C{GET /v1/models} of its API)."""
    data = document.get("data") if isinstance(document, dict) else None
    models = []
    seen = set()
    for raw in data if isinstance(data, list) else ():
        entry = model_entry(raw)
        if entry is None or entry.id in seen or entry.kind != "chat":
            continue
        seen.add(entry.id)
        name = raw.get("name")
        models.append(
            {
                "type": "model",
                "id": entry.id,
                "display_name": name if isinstance(name, str) else entry.id,
                "created_at": "1970-01-01T00:00:00Z",
            }
        )
    return {
        "data": models,
        "has_more": False,
        "first_id": models[0]["id"] if models else None,
        "last_id": models[-1]["id"] if models else None,
    }


class ModelsStrategy:
    """C{GET /models} and C{/v1/models}: passed through, then annotated."""

    reroutes = False
    model = None

    def prepare(self, request: Request, body: bytes) -> Deferred[UpstreamCall]:
        self._anthropic = wants_anthropic_list(request.requestHeaders)
        return PASSTHROUGH.prepare(request, body)

    def upstream_headers(self, headers: Headers, call: UpstreamCall) -> None:
        # The list is rewritten here: it must not come compressed.
        headers.setRawHeaders(b"accept-encoding", [b"identity"])

    def sink(
        self,
        request: Request,
        response: IResponse,
        options: RelayOptions,
        stop: Callable[[], None],
    ) -> BodySink:
        if response.code != 200 or response.headers.hasHeader(b"content-encoding"):
            return default_sink(request, response, options)
        anthropic = self._anthropic

        def rewrite(body: bytes) -> bytes:
            document = json.loads(body)
            shaped = anthropic_list(document) if anthropic else annotate(document)
            return json.dumps(shaped).encode()

        return Collect(request, rewrite, _unreadable)

    def error_body(self, status: int, message: str, code: str) -> bytes:
        return PASSTHROUGH.error_body(status, message, code)

    def reroute(self, status: int, body: bytes) -> UpstreamCall | None:
        return None


def _unreadable() -> bytes:
    return openai_error(
        "the upstream model list could not be read", "proxy_error", "upstream_error"
    )
