"""
Translation between the Anthropic Messages API and OpenAI chat completions.

Requests go one way (L{chat_request}), answers the other: a whole completion
(L{message_response}) or a stream of chunks, translated incrementally by
L{StreamTranslator}: each chunk becomes its Anthropic events when it arrives,
never after the whole answer.  L{MessagesStream} does the same on bytes, with
an SSE splitter in front.

Pure: JSON values and bytes in, JSON values and bytes out; no I/O.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable
from typing import Any

from ..wire import SSESplitter, encode

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


JSONObject = dict[str, Any]


#: The C{anthropic-beta} value the Copilot API's native C{/v1/messages}
#: wants with extended thinking (as the editor integrations send it).
INTERLEAVED_THINKING = b"interleaved-thinking-2025-05-14"


def wants_thinking(body: Any) -> bool:
    """
    Whether a Messages request asks for extended thinking: a C{thinking}
    object whose C{type} is not C{disabled}.
    """
    thinking = body.get("thinking") if isinstance(body, dict) else None
    return isinstance(thinking, dict) and thinking.get("type") != "disabled"


class TranslationError(ValueError):
    """The request is not a Messages request we can translate; the message says why."""


# Requests --------------------------------------------------------------


def _text_of(content: Any) -> str:
    """The text of a string or a list of blocks (non-text blocks ignored)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n\n".join(
            str(b.get("text", ""))
            for b in content
            if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _image_part(block: JSONObject) -> JSONObject | None:
    source = block.get("source")
    if not isinstance(source, dict):
        return None
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url":
        url = str(source.get("url", ""))
    else:
        return None
    return {"type": "image_url", "image_url": {"url": url}}


def _user_content(parts: list[JSONObject]) -> str | list[JSONObject]:
    """Plain text when there is only text: every model accepts that."""
    if all(p["type"] == "text" for p in parts):
        return "\n\n".join(p["text"] for p in parts)
    return parts


def _user_messages(content: Any) -> list[JSONObject]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise TranslationError("a user message's content must be a string or a list of blocks")
    out: list[JSONObject] = []
    parts: list[JSONObject] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "tool_result":
            inner = block.get("content")
            text = _text_of(inner)
            if block.get("is_error") and not text:
                text = "error"
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": str(block.get("tool_use_id", "")),
                    "content": text,
                }
            )
            if isinstance(inner, list):
                for b in inner:
                    if isinstance(b, dict) and b.get("type") == "image":
                        image = _image_part(b)
                        if image is not None:
                            parts.append(image)
        elif kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            image = _image_part(block)
            if image is not None:
                parts.append(image)
        # documents, thinking and other blocks have no chat/completions form
    if parts:
        out.append({"role": "user", "content": _user_content(parts)})
    return out


def _assistant_message(content: Any) -> JSONObject:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise TranslationError(
            "an assistant message's content must be a string or a list of blocks"
        )
    texts: list[str] = []
    calls: list[JSONObject] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": str(block.get("id", "")),
                    "type": "function",
                    "function": {
                        "name": str(block.get("name", "")),
                        "arguments": json.dumps(block.get("input", {}), ensure_ascii=False),
                    },
                }
            )
    message: JSONObject = {"role": "assistant", "content": "\n\n".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tool_choice(choice: Any) -> tuple[Any, bool | None]:
    """The chat/completions C{tool_choice} and C{parallel_tool_calls} for an Anthropic one."""
    if not isinstance(choice, dict):
        return None, None
    parallel = False if choice.get("disable_parallel_tool_use") else None
    kind = choice.get("type")
    if kind == "any":
        return "required", parallel
    if kind == "tool":
        return {"type": "function", "function": {"name": str(choice.get("name", ""))}}, parallel
    if kind == "none":
        return "none", parallel
    return "auto", parallel


def _max_tokens_field(model: str) -> str:
    # GPT-5 and the o-series refuse max_tokens and want max_completion_tokens.
    name = model.lower()
    if name.startswith("gpt-5") or (len(name) > 1 and name[0] == "o" and name[1].isdigit()):
        return "max_completion_tokens"
    return "max_tokens"


def chat_request(body: Any, model: str) -> JSONObject:
    """
    The chat/completions request for a Messages request.

    Kept: system prompt, text and image blocks, tools and C{tool_choice},
    C{tool_use} / C{tool_result} blocks, C{stop_sequences}, C{max_tokens},
    C{temperature}, C{top_p}, C{stream}.  Dropped: C{metadata}, C{top_k},
    C{thinking} and blocks with no chat/completions form.  Thinking has no
    chat/completions form, so a request that asks for it is answered
    without thinking blocks; the native mode keeps it.

    @param model: the Copilot model id to ask for (already mapped).
    @raise TranslationError: when C{body} is not a Messages request.
    """
    if not isinstance(body, dict):
        raise TranslationError("the request body must be a JSON object")
    request: JSONObject = {"model": model, "messages": _chat_messages(body)}
    if isinstance(body.get("max_tokens"), int):
        request[_max_tokens_field(model)] = body["max_tokens"]
    for name in ("temperature", "top_p"):
        if isinstance(body.get(name), (int, float)):
            request[name] = body[name]
    if isinstance(body.get("stop_sequences"), list) and body["stop_sequences"]:
        request["stop"] = body["stop_sequences"]
    tools = _chat_tools(body.get("tools"))
    if tools:
        request["tools"] = tools
        choice, parallel = _tool_choice(body.get("tool_choice"))
        if choice is not None:
            request["tool_choice"] = choice
        if parallel is not None:
            request["parallel_tool_calls"] = parallel
    if body.get("stream") is True:
        request["stream"] = True
        request["stream_options"] = {"include_usage": True}
    return request


def _chat_messages(body: JSONObject) -> list[JSONObject]:
    """The chat/completions messages of a Messages request: system first."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise TranslationError("messages: a list of messages is required")
    out: list[JSONObject] = []
    system = _text_of(body.get("system"))
    if system:
        out.append({"role": "system", "content": system})
    for message in messages:
        if not isinstance(message, dict):
            raise TranslationError("each message must be an object")
        role = message.get("role")
        if role == "user":
            out.extend(_user_messages(message.get("content")))
        elif role == "assistant":
            out.append(_assistant_message(message.get("content")))
        else:
            raise TranslationError(f"message role must be user or assistant, not {role!r}")
    return out


def _chat_tools(tools: Any) -> list[JSONObject]:
    """The chat/completions functions of Anthropic custom tools (others have none)."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise TranslationError("tools: a list of tools is required")
    return [
        {
            "type": "function",
            "function": {
                "name": str(tool.get("name", "")),
                "description": str(tool.get("description", "")),
                "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
            },
        }
        for tool in tools
        if isinstance(tool, dict) and tool.get("type") in (None, "custom")
    ]


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


# Answers ---------------------------------------------------------------


def _message_id(upstream_id: Any) -> str:
    if isinstance(upstream_id, str) and upstream_id:
        return "msg_" + upstream_id.removeprefix("chatcmpl-")
    return "msg_" + uuid.uuid4().hex


def _usage(usage: Any) -> JSONObject:
    """Anthropic usage from an OpenAI one: cached prompt tokens count apart."""
    if not isinstance(usage, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    prompt = int(usage.get("prompt_tokens") or 0)
    details = usage.get("prompt_tokens_details")
    cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    out: JSONObject = {
        "input_tokens": max(0, prompt - cached),
        "output_tokens": int(usage.get("completion_tokens") or 0),
    }
    if cached:
        out["cache_read_input_tokens"] = cached
    return out


def _arguments(text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else {}
    except ValueError:
        return {"_raw_arguments": text}


def message_response(completion: Any, model: str) -> JSONObject:
    """
    The Anthropic C{message} for a whole chat completion.  Every choice's
    content is kept: the Copilot API sometimes puts text and tool calls in
    separate choices.

    @param model: the model name the client asked for.
    """
    if not isinstance(completion, dict):
        raise TranslationError("the upstream answer is not a JSON object")
    content: list[JSONObject] = []
    finish = None
    for choice in completion.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        message = choice.get("message") or {}
        text = message.get("content")
        if isinstance(text, str) and text:
            content.append({"type": "text", "text": text})
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            content.append(
                {
                    "type": "tool_use",
                    "id": str(call.get("id") or "toolu_" + uuid.uuid4().hex),
                    "name": str(function.get("name", "")),
                    "input": _arguments(str(function.get("arguments") or "")),
                }
            )
        finish = choice.get("finish_reason") or finish
    stop = STOP_REASONS.get(str(finish), "end_turn")
    if any(block["type"] == "tool_use" for block in content):
        stop = "tool_use"
    return {
        "id": _message_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": _usage(completion.get("usage")),
    }


class StreamTranslator:
    """
    Turns chat-completion chunks into the Anthropic streaming events, one
    chunk at a time.

    The events always form a well-formed Messages stream: C{message_start},
    then per content block C{content_block_start}, its deltas and
    C{content_block_stop}, then C{message_delta} (stop reason and usage) and
    C{message_stop}; or an C{error} event when upstream reports one.
    Each tool call's arguments go out as C{input_json_delta} pieces as they
    arrive.  A tool call whose arguments resume after another block started
    (which OpenAI-style streams do not do) still gets them, on its own block
    index.
    """

    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self._ended = False
        self._next_index = 0
        self._open: int | None = None
        self._text_block: int | None = None
        self._tools: dict[int, int] = {}
        self._used_tools = False
        self._finish: str | None = None
        self._usage: JSONObject = {"input_tokens": 0, "output_tokens": 0}

    @property
    def ended(self) -> bool:
        return self._ended

    def _start(self, chunk: JSONObject | None) -> list[JSONObject]:
        self._started = True
        if chunk is not None and isinstance(chunk.get("usage"), dict):
            self._usage = _usage(chunk["usage"])
        message: JSONObject = {
            "id": _message_id(chunk.get("id") if chunk else None),
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": dict(self._usage),
        }
        return [{"type": "message_start", "message": message}]

    def _close_open(self) -> list[JSONObject]:
        if self._open is None:
            return []
        index, self._open = self._open, None
        self._text_block = None
        return [{"type": "content_block_stop", "index": index}]

    def _open_block(self, block: JSONObject) -> tuple[int, list[JSONObject]]:
        events = self._close_open()
        index = self._next_index
        self._next_index += 1
        self._open = index
        events.append({"type": "content_block_start", "index": index, "content_block": block})
        return index, events

    def feed(self, chunk: Any) -> list[JSONObject]:
        """The events for one chunk (a parsed C{data:} payload)."""
        if self._ended or not isinstance(chunk, dict):
            return []
        if "error" in chunk and not chunk.get("choices"):
            return self.fail(_error_message(chunk["error"]))
        events = [] if self._started else self._start(chunk)
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self._text_block is None:
                    self._text_block, opened = self._open_block({"type": "text", "text": ""})
                    events += opened
                events.append(
                    {
                        "type": "content_block_delta",
                        "index": self._text_block,
                        "delta": {"type": "text_delta", "text": text},
                    }
                )
            for call in delta.get("tool_calls") or ():
                events += self._tool_delta(call)
            if choice.get("finish_reason"):
                self._finish = str(choice["finish_reason"])
        if isinstance(chunk.get("usage"), dict):
            self._usage = _usage(chunk["usage"])
        return events

    def _tool_delta(self, call: Any) -> list[JSONObject]:
        if not isinstance(call, dict):
            return []
        events: list[JSONObject] = []
        position = call.get("index")
        if isinstance(position, int):
            key = position
        elif call.get("id") or not self._tools:
            key = -1 - len(self._tools)  # no index: a new call starts with an id
        else:
            key = list(self._tools)[-1]
        function = call.get("function") or {}
        if key not in self._tools:
            block = {
                "type": "tool_use",
                "id": str(call.get("id") or "toolu_" + uuid.uuid4().hex),
                "name": str(function.get("name") or ""),
                "input": {},
            }
            self._tools[key], opened = self._open_block(block)
            self._used_tools = True
            events += opened
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            events.append(
                {
                    "type": "content_block_delta",
                    "index": self._tools[key],
                    "delta": {"type": "input_json_delta", "partial_json": arguments},
                }
            )
        return events

    def finish(self) -> list[JSONObject]:
        """The upstream stream ended (C{[DONE]} or end of body): close the message."""
        if self._ended:
            return []
        events = [] if self._started else self._start(None)
        events += self._close_open()
        stop = STOP_REASONS.get(self._finish or "stop", "end_turn")
        if self._used_tools and stop == "end_turn":
            stop = "tool_use"
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": dict(self._usage),
            }
        )
        events.append({"type": "message_stop"})
        self._ended = True
        return events

    def fail(self, message: str) -> list[JSONObject]:
        """Upstream reported an error mid-stream: end with an C{error} event."""
        if self._ended:
            return []
        self._ended = True
        return [{"type": "error", "error": {"type": "api_error", "message": message}}]


def _error_message(error: Any) -> str:
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return str(error)[:500]


class MessagesStream:
    """
    Bytes of an upstream chat-completion event stream in, bytes of the
    Anthropic event stream out, incrementally.
    """

    def __init__(self, model: str) -> None:
        self._splitter = SSESplitter()
        self.translator = StreamTranslator(model)

    def feed(self, data: bytes) -> bytes:
        """The Anthropic events completed by this piece of upstream body."""
        return _encode_all(self._translate(self._splitter.feed(data)))

    def end(self) -> bytes:
        """The upstream body ended: what is left, ending the message."""
        events = self._translate(self._splitter.close())
        events += self.translator.finish()
        return _encode_all(events)

    def cut(self, message: str) -> bytes:
        """The stream ends early: an C{error} event, unless it has ended."""
        return _encode_all(self.translator.fail(message))

    def _translate(self, sse: Iterable[Any]) -> list[JSONObject]:
        events: list[JSONObject] = []
        for event in sse:
            data = event.data.strip()
            if data == "[DONE]":
                events += self.translator.finish()
                continue
            try:
                chunk = json.loads(data)
            except ValueError:
                continue
            events += self.translator.feed(chunk)
        return events


def _encode_all(events: Iterable[JSONObject]) -> bytes:
    return b"".join(encode(event["type"], event) for event in events)
