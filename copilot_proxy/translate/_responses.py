"""
The OpenAI Responses codec: C{/v1/responses} requests and answers to and
from the neutral model, and Copilot's C{/responses} as an upstream.

What crosses and what does not is said where it happens; in short, a
client's request keeps its text, images, function tools, tool calls and
results, reasoning items, effort, limits and structured-output format;
non-function tools, files, C{metadata}, C{truncation}, C{store} and
C{include} are dropped; C{previous_response_id}, C{conversation} and
C{background} are refused, since Copilot keeps no responses.

Pure: JSON values in, JSON values out; the streams are in
L{copilot_proxy.translate._responses_stream}.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from ..wire import encode
from ._carriers import new_id
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
    Text,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    TranslationError,
)
from ._responses_items import (
    REDACTED_CARRIER,
    SIGNATURE_CARRIER,
    client_carrier,
    function_call_item,
    message_item,
    reasoning_item,
    reasoning_of,
    response_json,
    stop_of,
    summary_of,
    text_or_none,
    usage_of,
)
from ._responses_stream import ResponsesStreamDecoder, ResponsesStreamEncoder

#: Efforts in increasing order, for clamping one to what a model lists.
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")

#: The Responses API refuses a C{max_output_tokens} below this.
MIN_OUTPUT_TOKENS = 16

#: The longest C{safety_identifier} and C{prompt_cache_key} the Responses API
#: takes; a longer one is a 400 C{string_above_max_length}.
MAX_IDENTIFIER = 64

_TEXT_PARTS = ("input_text", "output_text", "text")
_SYSTEM_ROLES = ("system", "developer")
_CHOICES = ("auto", "none", "required")
_UNSTORED = {
    "previous_response_id": "previous_response_id cannot be honoured",
    "conversation": "conversation cannot be honoured",
}


class ResponsesCodec:
    """The Responses shape (see L{copilot_proxy.translate._model.Codec})."""

    shape: Shape = Shape.RESPONSES

    def decode_request(self, body: JSON) -> Request:
        return decode_request(body)

    def encode_request(self, request: Request, model: str, caps: Capabilities) -> JSON:
        return encode_request(request, model, caps)

    def decode_answer(self, body: JSON) -> Answer:
        return decode_answer(body)

    def encode_answer(self, answer: Answer, model: str) -> JSON:
        return encode_answer(answer, model)

    def stream_decoder(self) -> ResponsesStreamDecoder:
        return ResponsesStreamDecoder()

    def stream_encoder(self, model: str) -> ResponsesStreamEncoder:
        return ResponsesStreamEncoder(model)

    def without_foreign_carriers(self, body: JSON) -> JSON | None:
        return without_foreign_carriers(body)

    def error_event(self, message: str) -> bytes:
        """An C{error} event, which the OpenAI SDKs raise as the stream's error."""
        payload = {
            "type": "error",
            "sequence_number": 0,
            "code": "server_error",
            "message": message,
            "param": None,
        }
        return encode("error", payload)


# Requests in -----------------------------------------------------------------


def decode_request(body: JSON) -> Request:
    """
    The neutral request of a client's C{/v1/responses} body.  Leading
    system and developer messages join C{instructions} in L{Request.system};
    later ones stay in place as system turns.

    @raise TranslationError: when C{body} is not a Responses request, or
        asks for what Copilot cannot do (stored responses, background runs).
    """
    if not isinstance(body, dict):
        raise TranslationError("a Responses request must be a JSON object")
    _refuse_stored(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise TranslationError("a Responses request needs a model")
    system, messages = _leading_system(_decode_input(body.get("input")))
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        system.insert(0, instructions)
    reasoning = body.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    text = body.get("text")
    return Request(
        model=model,
        messages=messages,
        system=system,
        tools=_decode_tools(body.get("tools")),
        tool_choice=_decode_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=_optional(body, "parallel_tool_calls", bool),
        max_tokens=_optional(body, "max_output_tokens", int),
        temperature=_number(body, "temperature"),
        top_p=_number(body, "top_p"),
        stream=body.get("stream") is True,
        thinking=isinstance(reasoning, dict) and effort != "none",
        effort=effort if isinstance(effort, str) else None,
        user=_user_of(body),
        response_format=_decode_format(text.get("format") if isinstance(text, dict) else None),
        source=Shape.RESPONSES,
    )


def without_foreign_carriers(body: JSON) -> JSON | None:
    """
    A client's body for Copilot's C{/responses} as it came, but with the
    reasoning this proxy handed the client from another endpoint made
    right, or L{None} when it holds none: items whose C{encrypted_content}
    carries a Claude thinking block (see L{client_carrier}) are dropped, as
    Copilot cannot verify them and refuses the request
    (C{invalid_encrypted_content}), and so every later turn of a client that
    switched from a Claude model to a Responses one; one whose content says
    C{"<encrypted>@<id>"} goes as that item.
    """
    items = body.get("input")
    if not isinstance(items, list):
        return None
    kept: list[Any] = []
    changed = False
    for item in items:
        encrypted = item.get("encrypted_content") if _is_reasoning(item) else None
        if isinstance(encrypted, str) and encrypted.startswith(_CARRIERS):
            changed = True
            continue
        if isinstance(encrypted, str) and "@" in encrypted:
            content, _, item_id = encrypted.rpartition("@")
            item = dict(item, encrypted_content=content, id=item_id or item.get("id"))
            changed = True
        kept.append(item)
    return dict(body, input=kept) if changed else None


_CARRIERS = (SIGNATURE_CARRIER, REDACTED_CARRIER)


def _is_reasoning(item: Any) -> bool:
    return isinstance(item, dict) and item.get("type") == "reasoning"


def _refuse_stored(body: JSON) -> None:
    for field, what in _UNSTORED.items():
        if body.get(field) is not None:
            raise TranslationError(
                f"{what}: the Copilot API does not store responses, so send the whole"
                " conversation in input (with store: false) instead"
            )
    if body.get("background") is True:
        raise TranslationError("background responses are not supported: the Copilot API runs none")


def _optional(body: JSON, field: str, kind: type[Any]) -> Any:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TranslationError(f"{field} must be a {kind.__name__}")
    return value


def _number(body: JSON, field: str) -> float | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TranslationError(f"{field} must be a number")
    return float(value)


def _user_of(body: JSON) -> str | None:
    for field in ("safety_identifier", "user", "prompt_cache_key"):
        value = text_or_none(body.get(field))
        if value is not None:
            return value
    return None


def _leading_system(messages: list[Message]) -> tuple[list[str], list[Message]]:
    system: list[str] = []
    while messages and messages[0].role == "system":
        system += [p.text for p in messages.pop(0).parts if isinstance(p, Text) and p.text]
    return system, messages


def _decode_input(value: Any) -> list[Message]:
    if isinstance(value, str):
        return [Message("user", [Text(value)])]
    if not isinstance(value, list) or not value:
        raise TranslationError("a Responses request needs input: a string or a list of items")
    messages: list[Message] = []
    for item in value:
        if not isinstance(item, dict):
            raise TranslationError("each input item must be a JSON object")
        kind = item.get("type", "message")
        if kind == "message":
            _add_message(messages, item)
        elif kind == "function_call":
            _turn(messages, "assistant").parts.append(_decode_call(item))
        elif kind == "function_call_output":
            _tool_results_turn(messages).parts.append(_decode_output(item))
        elif kind == "reasoning":
            _turn(messages, "assistant").parts.append(reasoning_of(item))
        elif kind == "item_reference":
            raise TranslationError(
                "item_reference cannot be honoured: the Copilot API does not store"
                " responses, so send the items themselves"
            )
        elif kind != "compaction":
            # A compaction carrier only means something to the model that made it.
            raise TranslationError(f"input items of type {kind!r} cannot be translated")
    return messages


def _turn(messages: list[Message], role: str) -> Message:
    """The last turn if it has this role, else a new one."""
    if not messages or messages[-1].role != role:
        messages.append(Message(role))
    return messages[-1]


def _tool_results_turn(messages: list[Message]) -> Message:
    """A user turn holding only tool results, so results of one call stay together."""
    last = messages[-1] if messages else None
    if (
        last is None
        or last.role != "user"
        or not all(isinstance(p, ToolResult) for p in last.parts)
    ):
        messages.append(Message("user"))
    return messages[-1]


def _add_message(messages: list[Message], item: JSON) -> None:
    role = item.get("role")
    if role not in ("user", "assistant", *_SYSTEM_ROLES):
        raise TranslationError(
            f"an input message's role must be user, assistant or system, not {role!r}"
        )
    parts: list[Part] = list(_decode_content(item.get("content")))
    if role == "assistant":
        _turn(messages, "assistant").parts.extend(parts)
    elif role in _SYSTEM_ROLES:
        messages.append(Message("system", [p for p in parts if isinstance(p, Text)]))
    else:
        messages.append(Message("user", parts))


def _decode_content(content: Any) -> list[Text | Image]:
    if isinstance(content, str):
        return [Text(content)]
    if not isinstance(content, list):
        raise TranslationError("a message's content must be a string or a list of parts")
    parts: list[Text | Image] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(part, dict) or not isinstance(kind, str):
            raise TranslationError("each content part must be a JSON object with a type")
        if kind in _TEXT_PARTS:
            parts.append(Text(str(part.get("text", ""))))
        elif kind == "refusal":
            parts.append(Text(str(part.get("refusal", ""))))
        elif kind == "input_image":
            parts.append(_decode_image(part))
        elif kind == "input_file":
            raise TranslationError(
                "input_file parts cannot be translated: use a model that takes /responses"
            )
        else:
            raise TranslationError(f"content parts of type {kind!r} cannot be translated")
    return parts


def _decode_image(part: JSON) -> Image:
    url = part.get("image_url")
    if isinstance(url, dict):  # the Chat Completions spelling, which some clients send
        url = url.get("url")
    if not isinstance(url, str) or not url:
        raise TranslationError("an input_image needs an image_url (file ids cannot be resolved)")
    detail = part.get("detail")
    return Image(url, detail if isinstance(detail, str) else None)


def _decode_call(item: JSON) -> ToolCall:
    call_id, name = item.get("call_id"), item.get("name")
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str):
        raise TranslationError("a function_call item needs a call_id and a name")
    arguments = item.get("arguments", "")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return ToolCall(call_id, name, arguments)


def _decode_output(item: JSON) -> ToolResult:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise TranslationError("a function_call_output item needs a call_id")
    output = item.get("output", "")
    if isinstance(output, str):
        content: list[Text | Image] = [Text(output)]
    elif isinstance(output, list):
        content = _decode_content(output)
    else:
        content = [Text(json.dumps(output))]
    # An errored result goes out as "incomplete" (as the editor proxies send it).
    return ToolResult(call_id, content, is_error=item.get("status") == "incomplete")


def _decode_tools(tools: Any) -> list[Tool]:
    """Function tools; other kinds (web search, MCP, custom, ...) are dropped."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise TranslationError("tools must be a list")
    out: list[Tool] = []
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type") != "function":
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise TranslationError("a function tool needs a name")
        parameters, description = tool.get("parameters"), tool.get("description")
        description = description if isinstance(description, str) else ""
        if isinstance(parameters, dict):
            out.append(Tool(name, description, parameters))
        else:
            out.append(Tool(name, description))
    return out


def _decode_tool_choice(choice: Any) -> ToolChoice | None:
    if isinstance(choice, str) and choice in _CHOICES:
        return ToolChoice(choice)
    if not isinstance(choice, dict):
        return None
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return ToolChoice("tool", choice["name"])
    if choice.get("type") == "allowed_tools" and choice.get("mode") in ("auto", "required"):
        return ToolChoice(choice["mode"])
    return None


def _decode_format(fmt: Any) -> JSON | None:
    """C{text.format} as the Chat Completions C{response_format} the model holds."""
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") != "json_schema":
        return None
    keys = ("name", "schema", "strict", "description")
    return {"type": "json_schema", "json_schema": {k: fmt[k] for k in keys if k in fmt}}


# Requests out (to Copilot's /responses) -------------------------------------------


def encode_request(request: Request, model: str, caps: Capabilities) -> JSON:
    """
    The body for Copilot's C{/responses}: never stored (C{store: false},
    reasoning replayed through C{encrypted_content}), no C{temperature} or
    C{top_p} (reasoning models refuse them), no C{stop} (no such field).
    """
    body: JSON = {"model": model}
    if request.system:
        body["instructions"] = "\n\n".join(request.system)
    body["input"] = _encode_input(request.messages)
    if request.tools:
        body["tools"] = [_encode_tool(t) for t in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = _encode_tool_choice(request.tool_choice)
    if request.parallel_tool_calls is not None:
        body["parallel_tool_calls"] = request.parallel_tool_calls
    limit = _output_limit(request.max_tokens, caps)
    if limit is not None:
        body["max_output_tokens"] = limit
    effort = effort_for(request, caps)
    if effort is not None:
        body["reasoning"] = {"effort": effort, "summary": "auto"}
    fmt = _encode_format(request.response_format)
    if fmt is not None:
        body["text"] = {"format": fmt}
    if request.user:
        identifier = _identifier(request.user)
        body["safety_identifier"] = identifier
        body["prompt_cache_key"] = identifier
    body["stream"] = request.stream
    body["store"] = False
    body["include"] = ["reasoning.encrypted_content"]
    return body


def _identifier(user: str) -> str:
    """
    A user id as the Responses API takes it: as it is when it fits
    L{MAX_IDENTIFIER} bytes, else its SHA-256 in hex (64 characters), which
    keeps one id per user for caching and abuse tracking.  Claude Code's
    C{metadata.user_id}, a JSON object of device, account and session ids,
    is about 150 characters.
    """
    if len(user.encode()) <= MAX_IDENTIFIER:
        return user
    return hashlib.sha256(user.encode()).hexdigest()


def _output_limit(asked: int | None, caps: Capabilities) -> int | None:
    if asked is None:
        return None
    if caps.max_output_tokens is not None:
        asked = min(asked, caps.max_output_tokens)
    return max(asked, MIN_OUTPUT_TOKENS)


def effort_for(request: Request, caps: Capabilities) -> str | None:
    """
    The reasoning effort to send, among those C{caps} lists (none if it
    lists none): the asked effort, else one for the thinking budget
    (up to 2048 tokens C{low}, up to 8192 C{medium}, more C{high}; no budget
    C{medium}) when thinking was asked; clamped to the nearest listed.
    """
    listed = caps.reasoning_effort
    wanted = request.effort
    if wanted is None and request.thinking:
        wanted = _effort_of_budget(request.thinking_budget)
    if not listed or wanted is None:
        return None
    if wanted in listed:
        return wanted
    known = [e for e in listed if e in EFFORTS and e != "none"]
    if wanted not in EFFORTS or wanted == "none" or not known:
        return None
    rank = EFFORTS.index(wanted)
    return min(known, key=lambda e: (abs(EFFORTS.index(e) - rank), EFFORTS.index(e)))


def _effort_of_budget(budget: int | None) -> str:
    if budget is None:
        return "medium"
    return "low" if budget <= 2048 else "medium" if budget <= 8192 else "high"


def _encode_tool(tool: Tool) -> JSON:
    return {
        "type": "function",
        "name": tool.name,
        "description": tool.description,
        "parameters": tool.parameters or {"type": "object", "properties": {}},
        "strict": False,
    }


def _encode_tool_choice(choice: ToolChoice) -> JSON | str:
    if choice.kind == "tool" and choice.name:
        return {"type": "function", "name": choice.name}
    return choice.kind if choice.kind in _CHOICES else "auto"


def _encode_format(fmt: JSON | None) -> JSON | None:
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    schema = fmt.get("json_schema")
    if fmt.get("type") == "json_schema" and isinstance(schema, dict):
        return {"type": "json_schema", **schema}
    return None


def _encode_input(messages: list[Message]) -> list[JSON]:
    items: list[JSON] = []
    for message in messages:
        if message.role == "assistant":
            items += _assistant_items(message.parts)
        elif message.role == "system":
            texts = [p.text for p in message.parts if isinstance(p, Text) and p.text]
            if texts:
                content = [{"type": "input_text", "text": t} for t in texts]
                items.append({"type": "message", "role": "system", "content": content})
        else:
            items += _user_items(message.parts)
    return items


def _assistant_items(parts: list[Part]) -> list[JSON]:
    """Text runs as messages, calls and replayable reasoning as their own items, in order."""
    items: list[JSON] = []
    texts: list[str] = []

    def flush() -> None:
        if texts:
            content = [{"type": "output_text", "text": t, "annotations": []} for t in texts]
            items.append({"type": "message", "role": "assistant", "content": content})
            texts.clear()

    for part in parts:
        if isinstance(part, Text) and part.text:
            texts.append(part.text)
        elif isinstance(part, ToolCall):
            flush()
            items.append(
                {
                    "type": "function_call",
                    "call_id": part.id,
                    "name": part.name,
                    "arguments": part.arguments or "{}",
                }
            )
        elif isinstance(part, Reasoning):
            item = _replayed_reasoning(part)
            if item is not None:
                flush()
                items.append(item)
    flush()
    return items


def _replayed_reasoning(reasoning: Reasoning) -> JSON | None:
    """
    A reasoning item Copilot can verify: one it issued (C{encrypted} and
    its id), also when carried in an Anthropic signature as
    C{"<encrypted>@<id>"}.  A Claude signature, redacted thinking or bare
    text cannot be replayed here and gives nothing.
    """
    encrypted, item_id = reasoning.encrypted, reasoning.item_id
    if encrypted is None and reasoning.signature and "@" in reasoning.signature:
        encrypted, _, item_id = reasoning.signature.rpartition("@")
    if not encrypted or not item_id:
        return None
    return {
        "type": "reasoning",
        "id": item_id,
        "summary": summary_of(reasoning.text),
        "encrypted_content": encrypted,
    }


def _user_items(parts: list[Part]) -> list[JSON]:
    """
    User content as messages and tool results as C{function_call_output}
    items, in order.  Tool outputs carry text only here, so a result's
    images follow its run of outputs in a user message (as VS Code does).
    """
    items: list[JSON] = []
    pending: list[JSON] = []
    pending_from_user = False

    def flush() -> None:
        if pending:
            items.append({"type": "message", "role": "user", "content": list(pending)})
            pending.clear()

    for part in parts:
        if isinstance(part, ToolResult):
            if pending_from_user:
                flush()
                pending_from_user = False
            items.append(_function_output(part))
            pending += [_input_image(p) for p in part.content if isinstance(p, Image)]
        elif isinstance(part, Text):
            pending.append({"type": "input_text", "text": part.text})
            pending_from_user = True
        elif isinstance(part, Image):
            pending.append(_input_image(part))
            pending_from_user = True
    flush()
    return items


def _function_output(result: ToolResult) -> JSON:
    text = "\n\n".join(p.text for p in result.content if isinstance(p, Text))
    item: JSON = {"type": "function_call_output", "call_id": result.call_id, "output": text}
    if result.is_error:
        item["status"] = "incomplete"
    return item


def _input_image(image: Image) -> JSON:
    return {"type": "input_image", "image_url": image.url, "detail": image.detail or "auto"}


# Answers ---------------------------------------------------------------------------


def decode_answer(body: JSON) -> Answer:
    """
    The neutral answer of a non-streamed Responses body.

    @raise TranslationError: when C{body} is not one, or is a failed response.
    """
    output = body.get("output") if isinstance(body, dict) else None
    if not isinstance(output, list):
        raise TranslationError("a Responses answer needs an output list")
    if body.get("status") == "failed":
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        raise TranslationError(f"the upstream response failed: {message or 'no reason given'}")
    parts: list[Part] = []
    refused = False
    for item in output:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "reasoning":
            parts.append(reasoning_of(item))
        elif kind == "function_call":
            parts.append(_decode_call(item))
        elif kind == "message":
            content = item.get("content")
            for part in content if isinstance(content, list) else []:
                if isinstance(part, dict) and part.get("type") in ("output_text", "refusal"):
                    refused = refused or part["type"] == "refusal"
                    parts.append(Text(str(part.get("text", part.get("refusal", "")))))
    tool_use = any(isinstance(p, ToolCall) for p in parts)
    return Answer(
        id=str(body.get("id") or new_id("resp")),
        model=str(body.get("model") or ""),
        parts=parts,
        stop=stop_of(body.get("status"), body.get("incomplete_details"), tool_use, refused),
        usage=usage_of(body.get("usage"), body.get("copilot_usage")),
    )


def encode_answer(answer: Answer, model: str) -> JSON:
    """
    A whole Responses body for a client: text runs as messages, tool calls
    as C{function_call} items, reasoning as reasoning items whose
    C{encrypted_content} carries what replays it (see L{client_carrier});
    images and tool results in an answer have no Responses item and are
    dropped.  C{copilot_usage} is kept at the top level, as Copilot puts it.
    """
    output: list[JSON] = []
    texts: list[str] = []
    for part in [*answer.parts, None]:
        if isinstance(part, Text):
            texts.append(part.text)
            continue
        if texts:
            output.append(message_item(new_id("msg"), texts))
            texts = []
        if isinstance(part, ToolCall):
            output.append(function_call_item(new_id("fc"), part.id, part.name, part.arguments))
        elif isinstance(part, Reasoning):
            encrypted, item_id = client_carrier(part)
            output.append(reasoning_item(item_id or new_id("rs"), part.text, encrypted))
    body = response_json(
        answer.id or new_id("resp"), int(time.time()), model, output, answer.stop, answer.usage
    )
    if answer.usage.copilot_usage is not None:
        body["copilot_usage"] = answer.usage.copilot_usage
    return body
