"""
The client surfaces and where each request goes: the model catalog, the
routing rule, the routed strategy that translates when it must, the model
list, token counts.
"""

from ._anthropic import (
    MessagesStream,
    StreamTranslator,
    TranslationError,
    chat_request,
    estimate_tokens,
    message_response,
    wants_thinking,
)
from ._catalog import ModelCatalog
from ._dispatch import route_surfaces
from ._model_names import parse_model_map, resolve_model
from ._routed import RouterSettings
from ._routing import ModelEntry, choose, is_endpoint_refusal, parse_catalog

__all__ = [
    "MessagesStream",
    "ModelCatalog",
    "ModelEntry",
    "RouterSettings",
    "StreamTranslator",
    "TranslationError",
    "chat_request",
    "choose",
    "estimate_tokens",
    "is_endpoint_refusal",
    "message_response",
    "parse_catalog",
    "parse_model_map",
    "resolve_model",
    "route_surfaces",
    "wants_thinking",
]
