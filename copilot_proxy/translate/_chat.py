"""
OpenAI Chat Completions as one codec of the neutral model (L{ChatCodec}):
its requests and whole answers here, its streams in L{_chat_stream}.

Besides OpenAI's fields it speaks the Copilot API's own: C{reasoning_text}
and C{reasoning_opaque} on assistant messages and deltas (Claude's thinking
and signature through Chat Completions) and the top-level C{copilot_usage}.

Pure: JSON values in, JSON values out.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from ._carriers import (
    arguments_text,
    as_dict,
    carrier_of,
    native_signature,
    new_id,
    reasoning_of,
    text_of,
)
from ._chat_pieces import FINISH_STOPS, STOP_FINISHES, answer_id, chat_usage, chat_usage_json
from ._chat_stream import ChatStreamDecoder, ChatStreamEncoder, chat_error_event
from ._model import (
    JSON,
    Answer,
    Capabilities,
    Image,
    Message,
    Part,
    Reasoning,
    Request,
    Shape,
    Stop,
    Text,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    TranslationError,
)

# The request fields with a neutral meaning; the others go to Request.extra.
_KNOWN = frozenset(
    {
        "model",
        "messages",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "stream",
        "stream_options",
        "reasoning_effort",
        "user",
        "response_format",
    }
)


def number(value: Any) -> float | None:
    """A JSON number (not a boolean), or C{None}."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return None


def integer(value: Any) -> int | None:
    """A JSON integer (not a boolean), or C{None}."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# Requests in -----------------------------------------------------------------


def decode_chat_request(body: Any) -> Request:
    """
    The neutral request of a Chat Completions body.  Leading system (and
    developer) messages become the request's system prompt; later ones stay
    in place as system turns; C{tool} messages become the tool results of
    a user turn.

    @raise TranslationError: when C{body} is not a Chat Completions request.
    """
    if not isinstance(body, dict):
        raise TranslationError("the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise TranslationError("messages: a list of messages is required")
    request = Request(model=text_of(body.get("model")), messages=[], source=Shape.CHAT)
    _decode_messages(request, messages)
    request.tools = _decode_tools(body.get("tools"))
    request.tool_choice = _decode_tool_choice(body.get("tool_choice"))
    if isinstance(body.get("parallel_tool_calls"), bool):
        request.parallel_tool_calls = body["parallel_tool_calls"]
    limit = integer(body.get("max_completion_tokens"))
    request.max_tokens = limit if limit is not None else integer(body.get("max_tokens"))
    request.temperature = number(body.get("temperature"))
    request.top_p = number(body.get("top_p"))
    stop = body.get("stop")
    request.stop = [stop] if isinstance(stop, str) else _strings(stop)
    request.stream = body.get("stream") is True
    effort = body.get("reasoning_effort")
    if isinstance(effort, str) and effort:
        request.effort = effort
        request.thinking = effort != "none"
    if isinstance(body.get("user"), str):
        request.user = body["user"]
    if isinstance(body.get("response_format"), dict):
        request.response_format = body["response_format"]
    request.extra = {k: v for k, v in body.items() if k not in _KNOWN}
    return request


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _decode_messages(request: Request, messages: list[Any]) -> None:
    turns = request.messages
    for message in messages:
        if not isinstance(message, dict):
            raise TranslationError("each message must be an object")
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            text = "\n\n".join(p.text for p in _content_parts(content) if isinstance(p, Text))
            if turns:
                turns.append(Message("system", [Text(text)]))
            else:
                request.system.append(text)
        elif role == "user":
            turns.append(Message("user", list(_content_parts(content))))
        elif role == "assistant":
            turns.append(Message("assistant", _assistant_parts(message)))
        elif role == "tool":
            result = ToolResult(text_of(message.get("tool_call_id")), _content_parts(content))
            last = turns[-1] if turns else None
            if last and last.role == "user" and all(isinstance(p, ToolResult) for p in last.parts):
                last.parts.append(result)
            else:
                turns.append(Message("user", [result]))
        else:
            raise TranslationError(
                f"message role must be system, developer, user, assistant or tool, not {role!r}"
            )


def _content_parts(content: Any) -> list[Text | Image]:
    """The text and image parts of a message's C{content} (a string or a list of parts)."""
    if isinstance(content, str):
        return [Text(content)]
    if content is None:
        return []
    if not isinstance(content, list):
        raise TranslationError("a message's content must be a string or a list of parts")
    parts: list[Text | Image] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text"):
            parts.append(Text(text_of(part.get("text"))))
        elif kind == "refusal":
            parts.append(Text(text_of(part.get("refusal"))))
        elif kind == "image_url":
            image = part.get("image_url")
            if isinstance(image, str):
                parts.append(Image(image))
            elif isinstance(image, dict) and isinstance(image.get("url"), str):
                detail = image.get("detail")
                parts.append(Image(image["url"], detail if isinstance(detail, str) else None))
        # audio and files have no neutral form
    return parts


def _assistant_parts(message: JSON) -> list[Part]:
    parts: list[Part] = []
    thinking = text_of(message.get("reasoning_text"))
    opaque = text_of(message.get("reasoning_opaque"))
    if thinking or opaque:
        parts.append(reasoning_of(thinking, opaque or None))
    parts.extend(_content_parts(message.get("content")))
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if not isinstance(call, dict):
            continue
        function = as_dict(call.get("function"))
        parts.append(
            ToolCall(
                text_of(call.get("id")),
                text_of(function.get("name")),
                arguments_text(function.get("arguments")),
            )
        )
    return parts


def _decode_tools(tools: Any) -> list[Tool]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise TranslationError("tools: a list of tools is required")
    out: list[Tool] = []
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            continue
        function = as_dict(tool.get("function"))
        parameters = function.get("parameters")
        out.append(
            Tool(
                text_of(function.get("name")),
                text_of(function.get("description")),
                parameters if isinstance(parameters, dict) else Tool("").parameters,
            )
        )
    return out


def _decode_tool_choice(choice: Any) -> ToolChoice | None:
    if choice in ("auto", "none", "required"):
        return ToolChoice(str(choice))
    if isinstance(choice, dict):
        name = as_dict(choice.get("function")).get("name")
        if isinstance(name, str):
            return ToolChoice("tool", name)
        return ToolChoice("auto")
    return None


# Requests out ------------------------------------------------------------------


def max_tokens_field(model: str) -> str:
    """The field that limits the answer: GPT-5 and the o-series refuse C{max_tokens}."""
    name = model.lower()
    if name.startswith("gpt-5") or (len(name) > 1 and name[0] == "o" and name[1].isdigit()):
        return "max_completion_tokens"
    return "max_tokens"


def encode_chat_request(request: Request, model: str, caps: Capabilities) -> JSON:
    """
    The C{/chat/completions} body for C{request}.  Kept: system turns in
    place, text, images, tools and tool choice, tool calls and results (as
    C{tool} messages right after their turn), a Claude thinking block with
    its signature (as C{reasoning_text} / C{reasoning_opaque}), the limits
    and sampling fields, C{response_format}, an effort the model lists.
    Dropped: reasoning without a Claude signature, C{user}, thinking budgets.
    """
    body: JSON = {"model": model, "messages": _encode_messages(request)}
    if request.max_tokens is not None:
        limit = request.max_tokens
        if caps.max_output_tokens:
            limit = min(limit, caps.max_output_tokens)
        body[max_tokens_field(model)] = limit
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop"] = list(request.stop)
    if request.tools:
        body["tools"] = [_tool(tool) for tool in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = _tool_choice(request.tool_choice)
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.effort and request.effort in caps.reasoning_effort:
        body["reasoning_effort"] = request.effort
    if request.response_format is not None:
        body["response_format"] = request.response_format
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if request.source is Shape.CHAT:
        for name, value in request.extra.items():
            body.setdefault(name, value)
    return body


def _tool(tool: Tool) -> JSON:
    function = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
    return {"type": "function", "function": function}


def _tool_choice(choice: ToolChoice) -> Any:
    if choice.kind == "tool":
        return {"type": "function", "function": {"name": choice.name or ""}}
    return choice.kind if choice.kind in ("none", "required") else "auto"


def _encode_messages(request: Request) -> list[JSON]:
    out: list[JSON] = []
    system = "\n\n".join(text for text in request.system if text)
    if system:
        out.append({"role": "system", "content": system})
    for message in request.messages:
        if message.role == "system":
            texts = [p.text for p in message.parts if isinstance(p, Text)]
            out.append({"role": "system", "content": "\n\n".join(texts)})
        elif message.role == "assistant":
            out.append(_assistant_message(message.parts))
        else:
            out.extend(_user_messages(message.parts))
    return out


def _user_messages(parts: list[Part]) -> list[JSON]:
    """A user turn: a C{tool} message per result, then the rest as one user message."""
    out: list[JSON] = []
    content: list[JSON] = []
    for part in parts:
        if isinstance(part, ToolResult):
            text = "\n\n".join(p.text for p in part.content if isinstance(p, Text))
            if part.is_error and not text:
                text = "error"
            out.append({"role": "tool", "tool_call_id": part.call_id, "content": text})
            content.extend(_image(p) for p in part.content if isinstance(p, Image))
        elif isinstance(part, Text):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, Image):
            content.append(_image(part))
    if content:
        if all(p["type"] == "text" for p in content):
            out.append({"role": "user", "content": "\n\n".join(p["text"] for p in content)})
        else:
            out.append({"role": "user", "content": content})
    return out


def _image(image: Image) -> JSON:
    url: JSON = {"url": image.url}
    if image.detail:
        url["detail"] = image.detail
    return {"type": "image_url", "image_url": url}


def _assistant_message(parts: list[Part]) -> JSON:
    texts = [p.text for p in parts if isinstance(p, Text)]
    message: JSON = {"role": "assistant", "content": "\n\n".join(texts) if texts else None}
    signed = [p for p in parts if isinstance(p, Reasoning) and native_signature(p)]
    if signed:
        # Chat carries one thinking block a message: the first, which led to the calls.
        message["reasoning_text"] = signed[0].text
        message["reasoning_opaque"] = signed[0].signature
    calls = [_call(p) for p in parts if isinstance(p, ToolCall)]
    if calls:
        message["tool_calls"] = calls
    return message


def _call(call: ToolCall) -> JSON:
    function = {"name": call.name, "arguments": call.arguments}
    return {"id": call.id or new_id("call"), "type": "function", "function": function}


# Answers ---------------------------------------------------------------------


def decode_chat_answer(body: Any) -> Answer:
    """
    The neutral answer of a whole chat completion.  Every choice's content
    is kept: the Copilot API sometimes puts text and tool calls in separate
    choices.

    @raise TranslationError: when C{body} is not a chat completion.
    """
    if not isinstance(body, dict):
        raise TranslationError("the upstream answer is not a JSON object")
    choices = body.get("choices") or []
    if not isinstance(choices, list):
        raise TranslationError("the upstream answer's choices are not a list")
    parts: list[Part] = []
    finish = None
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if isinstance(message, dict):
            parts.extend(p for p in _assistant_parts(message) if not _empty_text(p))
        finish = choice.get("finish_reason") or finish
    stop = FINISH_STOPS.get(str(finish), Stop.END)
    if stop is Stop.END and any(isinstance(p, ToolCall) for p in parts):
        stop = Stop.TOOL_USE
    return Answer(
        id=answer_id(body.get("id"), "chatcmpl-"),
        model=text_of(body.get("model")),
        parts=parts,
        stop=stop,
        usage=chat_usage(body.get("usage"), body.get("copilot_usage")),
    )


def _empty_text(part: Part) -> bool:
    return isinstance(part, Text) and not part.text


def encode_chat_answer(answer: Answer, model: str) -> JSON:
    """The client's C{chat.completion} for a whole answer (C{model} as the client asked)."""
    texts = [p.text for p in answer.parts if isinstance(p, Text)]
    message: JSON = {"role": "assistant", "content": "".join(texts) if texts else None}
    thoughts = [p for p in answer.parts if isinstance(p, Reasoning)]
    if any(p.text for p in thoughts):
        message["reasoning_text"] = "".join(p.text for p in thoughts)
    carriers = [c for c in map(carrier_of, thoughts) if c]
    if carriers:
        message["reasoning_opaque"] = carriers[0]
    calls = [_call(p) for p in answer.parts if isinstance(p, ToolCall)]
    if calls:
        message["tool_calls"] = calls
    stop = answer.stop
    if calls and stop is Stop.END:
        stop = Stop.TOOL_USE
    body: JSON = {
        "id": "chatcmpl-" + (answer.id or uuid.uuid4().hex),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": STOP_FINISHES[stop]}],
        "usage": chat_usage_json(answer.usage),
    }
    if answer.usage.copilot_usage is not None:
        body["copilot_usage"] = answer.usage.copilot_usage
    return body


class ChatCodec:
    """OpenAI Chat Completions (with the Copilot API's reasoning fields), both ways."""

    shape = Shape.CHAT

    def decode_request(self, body: JSON) -> Request:
        return decode_chat_request(body)

    def encode_request(self, request: Request, model: str, caps: Capabilities) -> JSON:
        return encode_chat_request(request, model, caps)

    def decode_answer(self, body: JSON) -> Answer:
        return decode_chat_answer(body)

    def encode_answer(self, answer: Answer, model: str) -> JSON:
        return encode_chat_answer(answer, model)

    def stream_decoder(self) -> ChatStreamDecoder:
        return ChatStreamDecoder()

    def stream_encoder(self, model: str) -> ChatStreamEncoder:
        return ChatStreamEncoder(model)

    def without_foreign_carriers(self, body: JSON) -> JSON | None:
        """
        L{None}: Copilot's Chat Completions is not known to refuse a
        C{reasoning_opaque} it did not issue, so the body goes as it came.
        """
        return None

    def error_event(self, message: str) -> bytes:
        return chat_error_event(message)
