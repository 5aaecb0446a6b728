"""
The Anthropic surface's translation to Chat Completions and back, through
the codecs of L{copilot_proxy.translate}: requests (L{chat_request}), whole
answers (L{message_response}) and streams, chunk by chunk
(L{StreamTranslator}) or on bytes (L{MessagesStream}); and the token
estimate of C{count_tokens}.

Pure: JSON values and bytes in, JSON values and bytes out; no I/O.
"""

from __future__ import annotations

import math
from typing import Any

from ..translate import INTERLEAVED_THINKING as _INTERLEAVED_THINKING
from ..translate import Capabilities, ChatCodec, Failed, MessagesCodec, StreamTranslation
from ..translate import TranslationError as _TranslationError
from ..translate import wants_thinking as _wants_thinking

__all__ = [
    "INTERLEAVED_THINKING",
    "MessagesStream",
    "StreamTranslator",
    "TranslationError",
    "chat_request",
    "estimate_tokens",
    "message_response",
    "wants_thinking",
]

JSONObject = dict[str, Any]

# This surface's names for the translate layer's own (one error type throughout).
TranslationError = _TranslationError
wants_thinking = _wants_thinking
INTERLEAVED_THINKING = _INTERLEAVED_THINKING


def chat_request(body: Any, model: str) -> JSONObject:
    """
    The chat/completions request for a Messages request (see the two
    codecs for what is kept and dropped).

    @param model: the Copilot model id to ask for (already mapped).
    @raise TranslationError: when C{body} is not a Messages request.
    """
    request = MessagesCodec().decode_request(body)
    return ChatCodec().encode_request(request, model, Capabilities())


def message_response(completion: Any, model: str) -> JSONObject:
    """
    The Anthropic C{message} for a whole chat completion.

    @param model: the model name the client asked for.
    @raise TranslationError: when C{completion} is not a chat completion.
    """
    return MessagesCodec().encode_answer(ChatCodec().decode_answer(completion), model)


class StreamTranslator:
    """
    Chat-completion chunks (parsed) to Anthropic streaming events (as JSON
    objects), one chunk at a time: the chunk-level face of L{MessagesStream}.
    """

    def __init__(self, model: str) -> None:
        self._decoder = ChatCodec().stream_decoder()
        self._encoder = MessagesCodec().stream_encoder(model)

    @property
    def ended(self) -> bool:
        return self._encoder.ended

    def feed(self, chunk: Any) -> list[JSONObject]:
        """The events for one chunk (a parsed C{data:} payload)."""
        return self._encoder.events(self._decoder.chunk(chunk))

    def finish(self) -> list[JSONObject]:
        """The upstream's C{[DONE]}: close the message."""
        return self._encoder.events(self._decoder.feed(None, "[DONE]"))

    def fail(self, message: str) -> list[JSONObject]:
        """Upstream reported an error mid-stream: end with an C{error} event."""
        return self._encoder.events([Failed(message)])


class MessagesStream(StreamTranslation):
    """
    Bytes of an upstream chat-completion event stream in, bytes of the
    Anthropic event stream out, incrementally.
    """

    def __init__(self, model: str) -> None:
        super().__init__(ChatCodec(), MessagesCodec(), model)


def estimate_tokens(body: Any) -> int:
    """
    A rough input token count for C{/v1/messages/count_tokens}: the characters
    of every string in C{system}, C{messages} and C{tools} (except the
    C{type} and C{role} fields) divided by four,
    plus four per message and 1,600 per image (Anthropic's figure for a
    typical image).  No tokenizer: an estimate good for budgeting, not billing.
    """
    if not isinstance(body, dict):
        raise TranslationError("the request body must be a JSON object")
    chars = 0
    images = 0

    def walk(value: Any) -> None:
        nonlocal chars, images
        if isinstance(value, str):
            chars += len(value)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            if value.get("type") == "image":
                images += 1
                return
            for key, item in value.items():
                if key not in ("type", "role"):
                    walk(item)

    messages = body.get("messages")
    walk(body.get("system"))
    walk(messages)
    walk(body.get("tools"))
    count = len(messages) if isinstance(messages, list) else 0
    return max(1, math.ceil(chars / 4) + 4 * count + 1600 * images)
