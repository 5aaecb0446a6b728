"""
The neutral model every wire shape translates through.

Three client shapes (OpenAI Chat Completions, OpenAI Responses, Anthropic
Messages) meet three upstream endpoints.  Rather than a translator per pair,
each shape has one codec (see L{Codec}): it decodes its requests and answers
into these types and encodes these types into its own, so N shapes cost N
pieces.  Streams are a sequence of L{Event}s, produced and consumed one at a
time as upstream bytes arrive.

Pure: plain data, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

JSON = dict[str, Any]


class TranslationError(ValueError):
    """A body that is not a request (or answer) of its shape; the message says why."""


class Shape(str, Enum):
    """A wire shape, named by its upstream endpoint path."""

    CHAT = "/chat/completions"
    RESPONSES = "/responses"
    MESSAGES = "/v1/messages"

    def __str__(self) -> str:
        return self.value


# Content -----------------------------------------------------------------


@dataclass
class Text:
    text: str


@dataclass
class Image:
    """An image: a C{data:} URL (base64) or an C{https:} URL."""

    url: str
    detail: str | None = None


@dataclass
class ToolCall:
    """
    A call the model made.  C{id} pairs it with its L{ToolResult} in every
    shape (Chat's C{tool_calls[].id}, Responses' C{call_id}, Anthropic's
    C{tool_use.id}); C{arguments} is the JSON text of the arguments.
    """

    id: str
    name: str
    arguments: str


@dataclass
class ToolResult:
    call_id: str
    content: list[Text | Image]
    is_error: bool = False


@dataclass
class Reasoning:
    """
    A model's thinking, with whatever lets it be replayed: an Anthropic
    C{signature} (Claude through native Messages or Chat's
    C{reasoning_opaque}), or a Responses reasoning item's C{encrypted} content
    and C{item_id}.  A carrier is only valid for the shape that issued it:
    encoders drop what their endpoint cannot verify, never invent one.

    @ivar redacted: an Anthropic C{redacted_thinking} block's data.
    """

    text: str = ""
    signature: str | None = None
    encrypted: str | None = None
    item_id: str | None = None
    redacted: str | None = None


Part = Text | Image | ToolCall | ToolResult | Reasoning


@dataclass
class Message:
    """
    One turn.  C{role} is C{system}, C{user} or C{assistant}; tool results
    are parts of a user turn (as Anthropic puts them; the Chat encoder turns
    them into C{tool} messages, Responses into C{function_call_output}
    items).  A system turn may stand anywhere: encoders keep it in its place
    where their shape allows, else move it to the instructions.
    """

    role: str
    parts: list[Part] = field(default_factory=list)


@dataclass
class Tool:
    name: str
    description: str = ""
    parameters: JSON = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass
class ToolChoice:
    """C{kind}: C{auto}, C{none}, C{required}, or C{tool} (then C{name})."""

    kind: str = "auto"
    name: str | None = None


@dataclass
class Request:
    """
    A model request in no shape in particular.

    @ivar effort: reasoning effort (C{low}, C{medium}, C{high}, ...), if
        asked for.
    @ivar thinking_budget: an Anthropic thinking budget in tokens, if asked.
    @ivar thinking: whether thinking/reasoning was asked for at all.
    @ivar user: a stable end-user id (Anthropic C{metadata.user_id}, OpenAI
        C{user}), for prompt caching.
    @ivar response_format: an OpenAI C{response_format} (JSON schema).
    @ivar extra: fields of the source shape with no neutral meaning, kept
        for an encoder of the same shape (passthrough of unknown options).
    @ivar source: the shape the request was decoded from, if a decoder says
        so: an encoder adds C{extra} only to a request of its own shape.
    """

    model: str
    messages: list[Message]
    system: list[str] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    thinking: bool = False
    effort: str | None = None
    thinking_budget: int | None = None
    user: str | None = None
    response_format: JSON | None = None
    extra: JSON = field(default_factory=dict)
    source: Shape | None = None


class Stop(str, Enum):
    """Why a turn ended, in no shape in particular (see the 2026 notes' 4.6)."""

    END = "end"
    TOOL_USE = "tool_use"
    MAX_TOKENS = "max_tokens"
    STOP_SEQUENCE = "stop_sequence"
    CONTENT_FILTER = "content_filter"
    REFUSAL = "refusal"


@dataclass
class Usage:
    """
    Token counts.  C{input} excludes cache reads and writes (Anthropic's
    meaning); OpenAI shapes add them back.  C{copilot_usage} is the Copilot
    API's cost record, passed on as it came.
    """

    input: int = 0
    cached: int = 0
    cache_write: int = 0
    output: int = 0
    reasoning: int = 0
    copilot_usage: JSON | None = None


@dataclass
class Answer:
    """A whole, non-streamed answer."""

    id: str
    model: str
    parts: list[Part]
    stop: Stop = Stop.END
    usage: Usage = field(default_factory=Usage)


# Stream events -------------------------------------------------------------


@dataclass
class Started:
    """The answer began (always the first event)."""

    id: str
    model: str
    usage: Usage | None = None


@dataclass
class TextDelta:
    text: str


@dataclass
class ReasoningDelta:
    """Thinking text as it streams."""

    text: str


@dataclass
class ReasoningDone:
    """
    The reasoning block ended, with what replays it (a signature, or an
    encrypted item and its id).
    """

    signature: str | None = None
    encrypted: str | None = None
    item_id: str | None = None
    redacted: str | None = None


@dataclass
class ToolCallStarted:
    """
    A tool call began.  C{index} counts the calls of this answer from 0, in
    the order they started: parallel calls stay apart by it.
    """

    index: int
    id: str
    name: str


@dataclass
class ToolArguments:
    index: int
    delta: str


@dataclass
class Finished:
    """The answer ended well (always the last event but an L{Failed})."""

    stop: Stop
    usage: Usage | None = None


@dataclass
class Failed:
    """The answer ended badly: an error to show the client, then the end."""

    message: str


Event = (
    Started
    | TextDelta
    | ReasoningDelta
    | ReasoningDone
    | ToolCallStarted
    | ToolArguments
    | Finished
    | Failed
)


# Codecs ---------------------------------------------------------------------


class StreamDecoder(Protocol):
    """Upstream SSE events of one shape in, neutral events out, incrementally."""

    def feed(self, name: str | None, data: str) -> list[Event]:
        """
        The neutral events of one SSE event (C{name} is its C{event:} field,
        C{data} its data, C{[DONE]} included).

        @raise TranslationError: on an event that breaks the shape; the
            caller ends the client's stream with an error.
        """

    def end(self) -> list[Event]:
        """
        The upstream stream ended: what is left.  A stream that ended without
        its shape's terminal event gives a L{Failed}, never a clean finish.
        """


class StreamEncoder(Protocol):
    """Neutral events in, the client shape's SSE bytes out, incrementally."""

    def feed(self, events: Iterable[Event]) -> bytes:
        """The bytes of these events (perhaps none yet)."""


class Codec(Protocol):
    """One wire shape: its requests, answers and streams, both ways."""

    shape: Shape

    def decode_request(self, body: JSON) -> Request:
        """@raise TranslationError: when C{body} is not a request of this shape."""

    def encode_request(self, request: Request, model: str, caps: Capabilities) -> JSON:
        """The body to send to this shape's endpoint for C{model}."""

    def decode_answer(self, body: JSON) -> Answer:
        """@raise TranslationError: when C{body} is not an answer of this shape."""

    def encode_answer(self, answer: Answer, model: str) -> JSON:
        """The client body of a whole answer; C{model} is the name the client asked for."""

    def stream_decoder(self) -> StreamDecoder: ...

    def stream_encoder(self, model: str) -> StreamEncoder:
        """An encoder for one client stream; C{model} as the client asked."""

    def error_event(self, message: str) -> bytes:
        """The SSE bytes of a mid-stream error in this shape."""

    def without_foreign_carriers(self, body: JSON) -> JSON | None:
        """
        A client's request body, bound for this shape's own endpoint
        untranslated, without the reasoning this proxy handed the client
        from another endpoint (which this one cannot verify, and refuses);
        L{None} when it holds none.  A client that switches models keeps
        such reasoning in its history.
        """


@dataclass(frozen=True)
class Capabilities:
    """
    What the catalog says a model supports, for the encoders: efforts and
    thinking budgets are mapped to what it lists, and dropped if it lists
    none.
    """

    reasoning_effort: tuple[str, ...] = ()
    min_thinking_budget: int | None = None
    max_thinking_budget: int | None = None
    adaptive_thinking: bool = False
    max_output_tokens: int | None = None
