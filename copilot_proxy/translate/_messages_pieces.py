"""
The pieces of Anthropic Messages that its requests, answers and streams
share: stop reasons, usage, content blocks, each way.

Pure: JSON values in, JSON values out.
"""

from __future__ import annotations

import re
from typing import Any

from ._carriers import (
    arguments_object,
    arguments_text,
    as_dict,
    carrier_of,
    count,
    new_id,
    reasoning_of,
    text_of,
)
from ._model import JSON, Image, Part, Reasoning, Stop, Text, ToolCall, ToolResult, Usage
from ._responses_items import THINKING_PLACEHOLDER

#: Anthropic C{stop_reason}s and the neutral stops (2026 notes, 3.3 and 4.6).
REASON_STOPS = {
    "end_turn": Stop.END,
    "pause_turn": Stop.END,
    "tool_use": Stop.TOOL_USE,
    "max_tokens": Stop.MAX_TOKENS,
    "model_context_window_exceeded": Stop.MAX_TOKENS,
    "stop_sequence": Stop.STOP_SEQUENCE,
    "refusal": Stop.REFUSAL,
}
STOP_REASONS = {
    Stop.END: "end_turn",
    Stop.TOOL_USE: "tool_use",
    Stop.MAX_TOKENS: "max_tokens",
    Stop.STOP_SEQUENCE: "stop_sequence",
    Stop.CONTENT_FILTER: "refusal",
    Stop.REFUSAL: "refusal",
}

_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]")
_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.DOTALL)


def messages_usage(usage: Any, copilot_usage: Any = None, base: Usage | None = None) -> Usage:
    """
    Neutral usage of an Anthropic C{usage} object (its C{input_tokens}
    exclude the cache, as neutral C{input} does); the fields it lacks keep
    C{base}'s values (a C{message_delta} updates its C{message_start}).
    """
    base = base or Usage()
    usage = as_dict(usage)

    def field(name: str, old: int) -> int:
        return count(usage[name]) if name in usage else old

    details = as_dict(usage.get("output_tokens_details"))
    copilot = copilot_usage if isinstance(copilot_usage, dict) else base.copilot_usage
    return Usage(
        input=field("input_tokens", base.input),
        cached=field("cache_read_input_tokens", base.cached),
        cache_write=field("cache_creation_input_tokens", base.cache_write),
        output=field("output_tokens", base.output),
        reasoning=count(details["thinking_tokens"])
        if "thinking_tokens" in details
        else base.reasoning,
        copilot_usage=copilot,
    )


def messages_usage_json(usage: Usage | None) -> JSON:
    """An Anthropic C{usage} object; the cache fields only when there were such tokens."""
    usage = usage or Usage()
    out: JSON = {"input_tokens": usage.input, "output_tokens": usage.output}
    if usage.cached:
        out["cache_read_input_tokens"] = usage.cached
    if usage.cache_write:
        out["cache_creation_input_tokens"] = usage.cache_write
    return out


def tool_id(call_id: str) -> str:
    """A tool use id Anthropic accepts (C{[A-Za-z0-9_-]+}); calls and results map alike."""
    return _UNSAFE_ID.sub("_", call_id) if call_id else new_id("toolu")


# Blocks in --------------------------------------------------------------------


def image_of(block: JSON) -> Image | None:
    """The neutral image of an C{image} block: base64 data as a C{data:} URL."""
    source = as_dict(block.get("source"))
    if source.get("type") == "base64":
        media = text_of(source.get("media_type")) or "image/png"
        return Image(f"data:{media};base64,{text_of(source.get('data'))}")
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return Image(source["url"])
    return None


def content_parts(content: Any) -> list[Text | Image]:
    """The text and images of a string or a list of blocks (a tool result's content)."""
    if isinstance(content, str):
        return [Text(content)] if content else []
    parts: list[Text | Image] = []
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            parts.append(Text(text_of(block.get("text"))))
        elif block.get("type") == "image":
            image = image_of(block)
            if image is not None:
                parts.append(image)
    return parts


def part_of(block: JSON) -> Part | None:
    """The neutral part of one content block, or C{None} for one with no neutral form."""
    kind = block.get("type")
    if kind == "text":
        return Text(text_of(block.get("text")))
    if kind == "image":
        return image_of(block)
    if kind == "tool_use":
        name = text_of(block.get("name"))
        return ToolCall(text_of(block.get("id")), name, arguments_text(block.get("input", {})))
    if kind == "tool_result":
        return ToolResult(
            text_of(block.get("tool_use_id")),
            content_parts(block.get("content")),
            block.get("is_error") is True,
        )
    if kind == "thinking":
        carrier = text_of(block.get("signature")) or None
        text = text_of(block.get("thinking"))
        reasoning = reasoning_of(text, carrier)
        if reasoning.encrypted is not None and text == THINKING_PLACEHOLDER:
            reasoning.text = ""  # ours, shown for a Responses item with no summary
        return reasoning
    if kind == "redacted_thinking":
        return Reasoning(redacted=text_of(block.get("data")))
    return None  # documents, server tools and others have no neutral form


# Blocks out -------------------------------------------------------------------


def image_block(image: Image) -> JSON | None:
    match = _DATA_URL.fullmatch(image.url)
    if match:
        source = {"type": "base64", "media_type": match["type"], "data": match["data"]}
        return {"type": "image", "source": source}
    if image.url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": image.url}}
    return None


def thinking_block(reasoning: Reasoning, native: bool) -> JSON | None:
    """
    The block of a reasoning part.  To the native endpoint only what it can
    verify (a Claude signature, redacted data); to a client also a Responses
    carrier as C{"<encrypted>@<id>"}, with a placeholder text when there is
    none (clients drop empty thinking blocks, and with them the carrier).
    """
    if reasoning.redacted:
        return {"type": "redacted_thinking", "data": reasoning.redacted}
    signature = reasoning.signature if native else carrier_of(reasoning)
    if native and (not signature or "@" in signature):
        return None
    if not signature and not reasoning.text:
        return None
    text = reasoning.text
    if not text and reasoning.encrypted and not reasoning.signature:
        text = THINKING_PLACEHOLDER
    return {"type": "thinking", "thinking": text, "signature": signature or ""}


def tool_use_block(call: ToolCall) -> JSON:
    return {
        "type": "tool_use",
        "id": tool_id(call.id),
        "name": call.name,
        "input": arguments_object(call.arguments),
    }


def blocks_of(parts: list[Part], native: bool) -> list[JSON]:
    """
    The content blocks of neutral parts (see L{thinking_block} for
    C{native}); empty text has no block (Anthropic refuses them).
    """
    blocks: list[JSON | None] = []
    for part in parts:
        if isinstance(part, Text):
            blocks.append({"type": "text", "text": part.text} if part.text else None)
        elif isinstance(part, Image):
            blocks.append(image_block(part))
        elif isinstance(part, ToolCall):
            blocks.append(tool_use_block(part))
        elif isinstance(part, ToolResult):
            blocks.append(_tool_result_block(part))
        else:
            blocks.append(thinking_block(part, native))
    return [block for block in blocks if block is not None]


def _tool_result_block(result: ToolResult) -> JSON:
    block: JSON = {"type": "tool_result", "tool_use_id": tool_id(result.call_id)}
    content = blocks_of(list(result.content), native=True)
    if content and all(b["type"] == "text" for b in content):
        block["content"] = "\n\n".join(b["text"] for b in content)
    elif content:
        block["content"] = content
    if result.is_error:
        block["is_error"] = True
    return block
