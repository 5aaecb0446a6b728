"""
Which relay serves a request: by the surface its path belongs to.
"""

from __future__ import annotations

from collections.abc import Callable

from ..relay import PASSTHROUGH, Exchange, Relay, RelayContext
from ..translate import Shape
from ..web import ProxyRequest
from ..wire import Surface, classify, upstream_target
from ._count_tokens import CountTokens
from ._models_list import ModelsStrategy
from ._routed import RoutedStrategy, RouterSettings

# The upstream paths (after the /v1 alias) of the OpenAI shapes that route.
_ROUTED = {b"/chat/completions": Shape.CHAT, b"/responses": Shape.RESPONSES}


def client_shape(uri: bytes) -> Shape | None:
    """The shape of a model request by its path, or L{None} for other paths."""
    surface = classify(uri)
    if surface is Surface.MESSAGES:
        return Shape.MESSAGES
    if surface is not Surface.OPENAI:
        return None
    path = upstream_target(uri).partition(b"?")[0].rstrip(b"/")
    return _ROUTED.get(path)


def _is_model_list(request: ProxyRequest) -> bool:
    path = upstream_target(request.uri).partition(b"?")[0].rstrip(b"/")
    return request.method in (b"GET", b"HEAD") and path == b"/models"


def route_surfaces(
    context: RelayContext, settings: RouterSettings
) -> Callable[[ProxyRequest], Relay]:
    """
    A function that makes the relay of each request: model requests of every
    surface are routed by the catalog, token counts are answered here, and
    everything else (C{/models}, C{/embeddings}, ...) passes through.
    """

    def make(request: ProxyRequest) -> Relay:
        if classify(request.uri) is Surface.COUNT_TOKENS:
            return CountTokens(request, context)
        shape = client_shape(request.uri)
        if shape is None:
            if _is_model_list(request):
                return Exchange(request, context, ModelsStrategy())
            return Exchange(request, context, PASSTHROUGH)
        return Exchange(request, context, RoutedStrategy(shape, settings))

    return make
