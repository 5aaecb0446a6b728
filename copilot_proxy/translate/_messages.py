"""
Anthropic Messages as one codec of the neutral model (L{MessagesCodec}):
its requests and whole answers here, its streams in L{_messages_stream}.

Thinking is kept where it can be: a thinking block's signature goes back to
the native endpoint as it came; a Responses reasoning item reaches a
Messages client as a thinking block whose signature is
C{"<encrypted>@<id>"} and comes back to the Responses encoder, never to
Claude.

Pure: JSON values in, JSON values out.
"""

from __future__ import annotations

import uuid
from typing import Any

from ._carriers import as_dict, text_of
from ._chat_pieces import answer_id
from ._messages_pieces import (
    REASON_STOPS,
    STOP_REASONS,
    blocks_of,
    messages_usage,
    messages_usage_json,
    part_of,
)
from ._messages_stream import (
    MessagesStreamDecoder,
    MessagesStreamEncoder,
    messages_error_event,
)
from ._model import (
    JSON,
    Answer,
    Capabilities,
    Message,
    Part,
    Request,
    Shape,
    Stop,
    Text,
    Tool,
    ToolChoice,
    TranslationError,
)

#: The C{anthropic-beta} value the Copilot API's native C{/v1/messages}
#: wants with extended thinking (as the editor integrations send it).
INTERLEAVED_THINKING = b"interleaved-thinking-2025-05-14"

# The answer limit when a request names none (Anthropic requires one); the
# Copilot API's non-streaming limit for Claude models.
_DEFAULT_MAX_TOKENS = 16000
# Thinking budgets for an effort, when a request gives an effort but no budget.
_EFFORT_BUDGETS = {"minimal": 1024, "low": 4096, "medium": 8192, "high": 16000}
_MIN_BUDGET = 1024

_KNOWN = frozenset(
    {
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "max_tokens",
        "temperature",
        "top_p",
        "stop_sequences",
        "stream",
        "thinking",
        "output_config",
        "metadata",
    }
)


def wants_thinking(body: Any) -> bool:
    """
    Whether a Messages request asks for extended thinking: a C{thinking}
    object whose C{type} is not C{disabled}.
    """
    thinking = body.get("thinking") if isinstance(body, dict) else None
    return isinstance(thinking, dict) and thinking.get("type") != "disabled"


# Requests in ---------------------------------------------------------------------


def decode_messages_request(body: Any) -> Request:
    """
    The neutral request of a Messages body.  C{role: "system"} messages
    (which Claude Code sends to models that are not Claude's) are system
    turns in place.

    @raise TranslationError: when C{body} is not a Messages request.
    """
    if not isinstance(body, dict):
        raise TranslationError("the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise TranslationError("messages: a list of messages is required")
    request = Request(
        model=text_of(body.get("model")),
        messages=[_decode_message(m) for m in messages],
        system=_system_texts(body.get("system")),
        tools=_decode_tools(body.get("tools")),
        stream=body.get("stream") is True,
        thinking=wants_thinking(body),
        source=Shape.MESSAGES,
    )
    _decode_tool_choice(request, body.get("tool_choice"))
    if isinstance(body.get("max_tokens"), int) and not isinstance(body["max_tokens"], bool):
        request.max_tokens = body["max_tokens"]
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            setattr(request, name, value)
    stop = body.get("stop_sequences")
    request.stop = [s for s in stop if isinstance(s, str)] if isinstance(stop, list) else []
    budget = as_dict(body.get("thinking")).get("budget_tokens")
    if request.thinking and isinstance(budget, int) and not isinstance(budget, bool):
        request.thinking_budget = budget
    effort = as_dict(body.get("output_config")).get("effort")
    if isinstance(effort, str) and effort:
        request.effort = effort
    user = as_dict(body.get("metadata")).get("user_id")
    if isinstance(user, str) and user:
        request.user = user
    request.extra = {k: v for k, v in body.items() if k not in _KNOWN}
    return request


def without_foreign_carriers(body: JSON) -> JSON | None:
    """
    A client's body for the native C{/v1/messages} as it came, but without
    the thinking blocks whose signature is a Responses reasoning item
    (C{"<encrypted>@<id>"}, which a Claude signature never is), or L{None}
    when it has none.  This proxy gives them to Messages clients of
    Responses models; Claude refuses a request holding one ("Invalid
    signature in thinking block"), as after a switch from such a model to
    a Claude one.  An assistant turn left with nothing is dropped: Anthropic
    joins the turns of one role that then meet.
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    kept: list[Any] = []
    changed = False
    for message in messages:
        assistant = isinstance(message, dict) and message.get("role") == "assistant"
        content = message.get("content") if assistant else None
        if isinstance(content, list):
            blocks = [b for b in content if not _responses_carrier(b)]
            if len(blocks) != len(content):
                changed = True
                if not blocks:
                    continue
                message = dict(message, content=blocks)
        kept.append(message)
    return dict(body, messages=kept) if changed else None


def _responses_carrier(block: Any) -> bool:
    if not isinstance(block, dict) or block.get("type") != "thinking":
        return False
    signature = block.get("signature")
    return isinstance(signature, str) and "@" in signature


def _system_texts(system: Any) -> list[str]:
    if isinstance(system, str):
        return [system] if system else []
    if isinstance(system, list):
        return [text_of(b.get("text")) for b in system if isinstance(b, dict) and "text" in b]
    return []


def _decode_message(message: Any) -> Message:
    if not isinstance(message, dict):
        raise TranslationError("each message must be an object")
    role = message.get("role")
    if role not in ("user", "assistant", "system"):
        raise TranslationError(f"message role must be user, assistant or system, not {role!r}")
    content = message.get("content")
    if isinstance(content, str):
        return Message(str(role), [Text(content)])
    if not isinstance(content, list):
        raise TranslationError(f"a {role} message's content must be a string or a list of blocks")
    parts = [part_of(b) for b in content if isinstance(b, dict)]
    if role == "system":
        # A system turn is text: its other blocks have no place there.
        return Message("system", [p for p in parts if isinstance(p, Text)])
    return Message(str(role), [p for p in parts if p is not None])


def _decode_tools(tools: Any) -> list[Tool]:
    """The custom tools (server tools have no neutral form)."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise TranslationError("tools: a list of tools is required")
    return [
        Tool(
            text_of(tool.get("name")),
            text_of(tool.get("description")),
            tool.get("input_schema") or Tool("").parameters,
        )
        for tool in tools
        if isinstance(tool, dict) and tool.get("type") in (None, "custom")
    ]


def _decode_tool_choice(request: Request, choice: Any) -> None:
    if not isinstance(choice, dict):
        return
    if choice.get("disable_parallel_tool_use"):
        request.parallel_tool_calls = False
    kind = choice.get("type")
    if kind == "any":
        request.tool_choice = ToolChoice("required")
    elif kind == "tool":
        request.tool_choice = ToolChoice("tool", text_of(choice.get("name")))
    elif kind == "none":
        request.tool_choice = ToolChoice("none")
    else:
        request.tool_choice = ToolChoice("auto")


# Requests out --------------------------------------------------------------------


def encode_messages_request(request: Request, model: str, caps: Capabilities) -> JSON:
    """
    The native C{/v1/messages} body for C{request}.  System turns move to
    C{system} in order (Anthropic has no system role in place); thinking
    blocks go back only with a Claude signature (a Responses carrier is
    dropped); the thinking budget is clamped to the model's range and below
    C{max_tokens}; adaptive models get C{thinking: adaptive} and an effort
    they list.  Dropped: C{response_format}, reasoning Claude cannot verify,
    temperature and C{top_p} with thinking on (Anthropic refuses them).
    """
    system = list(request.system)
    for message in request.messages:
        if message.role == "system":
            system.extend(p.text for p in message.parts if isinstance(p, Text))
    limit = request.max_tokens or min(
        caps.max_output_tokens or _DEFAULT_MAX_TOKENS, _DEFAULT_MAX_TOKENS
    )
    if caps.max_output_tokens:
        limit = min(limit, caps.max_output_tokens)
    body: JSON = {"model": model, "max_tokens": limit, "messages": _encode_turns(request.messages)}
    if any(system):
        body["system"] = [{"type": "text", "text": text} for text in system if text]
    if request.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in request.tools
        ]
        choice = _tool_choice(request)
        if choice is not None:
            body["tool_choice"] = choice
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.stream:
        body["stream"] = True
    if request.user:
        body["metadata"] = {"user_id": request.user}
    forced = request.tool_choice is not None and request.tool_choice.kind in ("required", "tool")
    thinking = _thinking(request, caps, limit) if request.thinking and not forced else None
    if thinking is not None:
        body["thinking"] = thinking
    elif request.temperature is not None:
        # Newer Claude models refuse temperature and top_p together.
        body["temperature"] = request.temperature
    elif request.top_p is not None:
        body["top_p"] = request.top_p
    if request.effort and request.effort in caps.reasoning_effort:
        body["output_config"] = {"effort": request.effort}
    if request.source is Shape.MESSAGES:
        for name, value in request.extra.items():
            body.setdefault(name, value)
    return body


def _tool_choice(request: Request) -> JSON | None:
    choice = request.tool_choice
    out: JSON | None = None
    if choice is not None:
        kinds = {"required": "any", "none": "none", "tool": "tool"}
        out = {"type": kinds.get(choice.kind, "auto")}
        if choice.kind == "tool":
            out["name"] = choice.name or ""
    if request.parallel_tool_calls is False:
        out = out or {"type": "auto"}
        out["disable_parallel_tool_use"] = True
    return out


def _thinking(request: Request, caps: Capabilities, max_tokens: int) -> JSON | None:
    """The C{thinking} object for this model, or C{None} when no budget fits."""
    if caps.adaptive_thinking:
        return {"type": "adaptive"}
    low = max(caps.min_thinking_budget or _MIN_BUDGET, _MIN_BUDGET)
    high = max_tokens - 1
    if caps.max_thinking_budget:
        high = min(high, caps.max_thinking_budget)
    if low > high:
        return None
    budget = request.thinking_budget
    if not budget:
        # Leave the answer room: at most half of the limit is thinking.
        budget = min(_EFFORT_BUDGETS.get(request.effort or "", 8192), max_tokens // 2)
    return {"type": "enabled", "budget_tokens": max(low, min(budget, high))}


def _encode_turns(messages: list[Message]) -> list[JSON]:
    """The user and assistant turns with content; consecutive ones of a role merged."""
    turns: list[JSON] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = blocks_of(message.parts, native=True)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


# Answers ------------------------------------------------------------------------


def decode_messages_answer(body: Any) -> Answer:
    """
    The neutral answer of a whole Messages C{message}.

    @raise TranslationError: when C{body} is not a message.
    """
    if not isinstance(body, dict):
        raise TranslationError("the upstream answer is not a JSON object")
    content = body.get("content") or []
    if not isinstance(content, list):
        raise TranslationError("the upstream answer's content is not a list")
    parts: list[Part] = []
    for block in content:
        part = part_of(block) if isinstance(block, dict) else None
        if part is not None:
            parts.append(part)
    return Answer(
        id=answer_id(body.get("id"), "msg_"),
        model=text_of(body.get("model")),
        parts=parts,
        stop=REASON_STOPS.get(str(body.get("stop_reason")), Stop.END),
        usage=messages_usage(body.get("usage"), body.get("copilot_usage")),
    )


def encode_messages_answer(answer: Answer, model: str) -> JSON:
    """The client's C{message} for a whole answer (C{model} as the client asked)."""
    content = blocks_of(answer.parts, native=False)
    stop = answer.stop
    if stop is Stop.END and any(b["type"] == "tool_use" for b in content):
        stop = Stop.TOOL_USE
    body: JSON = {
        "id": "msg_" + (answer.id or uuid.uuid4().hex),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS[stop],
        "stop_sequence": None,
        "usage": messages_usage_json(answer.usage),
    }
    if answer.usage.copilot_usage is not None:
        body["copilot_usage"] = answer.usage.copilot_usage
    return body


class MessagesCodec:
    """Anthropic Messages (with the Copilot API's additions), both ways."""

    shape = Shape.MESSAGES

    def decode_request(self, body: JSON) -> Request:
        return decode_messages_request(body)

    def encode_request(self, request: Request, model: str, caps: Capabilities) -> JSON:
        return encode_messages_request(request, model, caps)

    def decode_answer(self, body: JSON) -> Answer:
        return decode_messages_answer(body)

    def encode_answer(self, answer: Answer, model: str) -> JSON:
        return encode_messages_answer(answer, model)

    def stream_decoder(self) -> MessagesStreamDecoder:
        return MessagesStreamDecoder()

    def stream_encoder(self, model: str) -> MessagesStreamEncoder:
        return MessagesStreamEncoder(model)

    def without_foreign_carriers(self, body: JSON) -> JSON | None:
        return without_foreign_carriers(body)

    def error_event(self, message: str) -> bytes:
        return messages_error_event(message)
