"""
Which relay serves a request: by the surface its path belongs to.
"""

from __future__ import annotations

from collections.abc import Callable

from ..relay import PASSTHROUGH, Exchange, Relay, RelayContext
from ..web import ProxyRequest
from ..wire import Surface, classify
from ._count_tokens import CountTokens
from ._messages import MessagesSettings, MessagesStrategy


def route_surfaces(
    context: RelayContext, settings: MessagesSettings
) -> Callable[[ProxyRequest], Relay]:
    """
    A function that makes the relay of each request: the Anthropic paths get
    theirs, everything else is passed through to the OpenAI surface.
    """

    def make(request: ProxyRequest) -> Relay:
        surface = classify(request.uri)
        if surface is Surface.MESSAGES:
            return Exchange(request, context, MessagesStrategy(settings))
        if surface is Surface.COUNT_TOKENS:
            return CountTokens(request, context)
        return Exchange(request, context, PASSTHROUGH)

    return make
