"""
Translation between the wire shapes (Chat Completions, Responses, Anthropic
Messages) through one neutral model: a codec per shape (pure).
"""

from ._chat import ChatCodec
from ._codecs import codec_for
from ._messages import INTERLEAVED_THINKING, MessagesCodec, wants_thinking
from ._model import (
    Answer,
    Capabilities,
    Event,
    Failed,
    Finished,
    Image,
    Message,
    Reasoning,
    ReasoningDelta,
    ReasoningDone,
    Request,
    Shape,
    Started,
    Stop,
    Text,
    TextDelta,
    Tool,
    ToolArguments,
    ToolCall,
    ToolCallStarted,
    ToolChoice,
    ToolResult,
    TranslationError,
    Usage,
)
from ._pipeline import StreamTranslation
from ._responses import ResponsesCodec
from ._usage import UsageCounts, UsageTap

__all__ = [
    "INTERLEAVED_THINKING",
    "Answer",
    "Capabilities",
    "ChatCodec",
    "Event",
    "Failed",
    "Finished",
    "Image",
    "Message",
    "MessagesCodec",
    "Reasoning",
    "ReasoningDelta",
    "ReasoningDone",
    "Request",
    "ResponsesCodec",
    "Shape",
    "Started",
    "Stop",
    "StreamTranslation",
    "Text",
    "TextDelta",
    "Tool",
    "ToolArguments",
    "ToolCall",
    "ToolCallStarted",
    "ToolChoice",
    "ToolResult",
    "TranslationError",
    "Usage",
    "UsageCounts",
    "UsageTap",
    "codec_for",
    "wants_thinking",
]
