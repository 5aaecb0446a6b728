"""
The client API shapes beyond plain passthrough: Anthropic Messages, its
translation, model names, the model catalog.
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
from ._messages import MessagesSettings
from ._model_names import parse_model_map, resolve_model

__all__ = [
    "MessagesSettings",
    "MessagesStream",
    "ModelCatalog",
    "StreamTranslator",
    "TranslationError",
    "chat_request",
    "estimate_tokens",
    "message_response",
    "parse_model_map",
    "resolve_model",
    "route_surfaces",
    "wants_thinking",
]
