"""
The pieces of Chat Completions that its answers and streams share: finish
reasons and usage, each way.

Pure: JSON values in, JSON values out.
"""

from __future__ import annotations

from typing import Any

from ._carriers import as_dict, count
from ._model import JSON, Stop, Usage

#: Chat C{finish_reason}s and the neutral stops (2026 notes, 4.6).
FINISH_STOPS = {
    "stop": Stop.END,
    "length": Stop.MAX_TOKENS,
    "tool_calls": Stop.TOOL_USE,
    "function_call": Stop.TOOL_USE,
    "content_filter": Stop.CONTENT_FILTER,
}
STOP_FINISHES = {
    Stop.END: "stop",
    Stop.STOP_SEQUENCE: "stop",
    Stop.TOOL_USE: "tool_calls",
    Stop.MAX_TOKENS: "length",
    Stop.CONTENT_FILTER: "content_filter",
    Stop.REFUSAL: "content_filter",
}


def chat_usage(usage: Any, copilot_usage: Any = None) -> Usage:
    """
    Neutral usage of a Chat C{usage} object, whose C{prompt_tokens} include
    cache reads (and Copilot's reported cache writes); neutral C{input} does not.
    """
    copilot = copilot_usage if isinstance(copilot_usage, dict) else None
    usage = as_dict(usage)
    details = as_dict(usage.get("prompt_tokens_details"))
    cached = count(details.get("cached_tokens"))
    written = count(details.get("cache_creation_input_tokens"))
    return Usage(
        input=max(0, count(usage.get("prompt_tokens")) - cached - written),
        cached=cached,
        cache_write=written,
        output=count(usage.get("completion_tokens")),
        reasoning=count(as_dict(usage.get("completion_tokens_details")).get("reasoning_tokens")),
        copilot_usage=copilot,
    )


def chat_usage_json(usage: Usage) -> JSON:
    """A Chat C{usage} object: cache reads and writes added back to the prompt."""
    prompt = usage.input + usage.cached + usage.cache_write
    details: JSON = {"cached_tokens": usage.cached}
    if usage.cache_write:
        details["cache_creation_input_tokens"] = usage.cache_write
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output,
        "total_tokens": prompt + usage.output,
        "prompt_tokens_details": details,
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning},
    }


def answer_id(upstream_id: Any, prefix: str) -> str:
    """The neutral id of an answer: the upstream's, without its shape's prefix."""
    return upstream_id.removeprefix(prefix) if isinstance(upstream_id, str) else ""
