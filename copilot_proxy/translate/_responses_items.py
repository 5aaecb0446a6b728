"""
The pieces of the OpenAI Responses shape that its requests, answers and
streams share: output items, usage, the response object, and the carriers
that let a client replay reasoning it was given.

Pure: JSON values in, JSON values out.
"""

from __future__ import annotations

import json
from typing import Any

from ._carriers import as_dict, count
from ._model import JSON, Reasoning, ReasoningDone, Stop, TranslationError, Usage

#: Prefixes of a reasoning item's C{encrypted_content} that carry what is
#: not a Responses carrier (a Claude signature, a redacted thinking block)
#: to a Responses client and back, the mirror of the C{"<encrypted>@<id>"}
#: signature convention of the Messages side.  Only this proxy reads them;
#: the Responses encoder never sends them to Copilot.
SIGNATURE_CARRIER = "copilot-proxy:signature:"
REDACTED_CARRIER = "copilot-proxy:redacted:"

#: The text a Messages encoder shows for a thinking block with no summary;
#: it is not reasoning and is not replayed as a summary.
THINKING_PLACEHOLDER = "Thinking..."

_INCOMPLETE_STOPS = {"max_output_tokens": Stop.MAX_TOKENS, "content_filter": Stop.CONTENT_FILTER}
_INCOMPLETE_REASONS = {Stop.MAX_TOKENS: "max_output_tokens", Stop.CONTENT_FILTER: "content_filter"}


def load_object(data: str) -> JSON:
    """
    The JSON object of one event's data.

    @raise TranslationError: when C{data} is not a JSON object.
    """
    try:
        value = json.loads(data)
    except ValueError:
        raise TranslationError("a Responses stream event's data is not JSON") from None
    if not isinstance(value, dict):
        raise TranslationError("a Responses stream event's data is not a JSON object")
    return value


def text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# Usage -------------------------------------------------------------------


def usage_of(usage: Any, copilot_usage: Any) -> Usage:
    """
    Neutral usage from a Responses C{usage} object, whose C{input_tokens}
    include cache reads and writes (neutral C{input} does not).
    """
    copilot = copilot_usage if isinstance(copilot_usage, dict) else None
    if not isinstance(usage, dict):
        return Usage(copilot_usage=copilot)
    details = as_dict(usage.get("input_tokens_details"))
    cached = count(details.get("cached_tokens"))
    written = count(details.get("cache_write_tokens"))
    return Usage(
        input=max(count(usage.get("input_tokens")) - cached - written, 0),
        cached=cached,
        cache_write=written,
        output=count(usage.get("output_tokens")),
        reasoning=count(as_dict(usage.get("output_tokens_details")).get("reasoning_tokens")),
        copilot_usage=copilot,
    )


def usage_json(usage: Usage | None) -> JSON:
    """A Responses C{usage} object: cache reads and writes added back to the input."""
    usage = usage or Usage()
    total_input = usage.input + usage.cached + usage.cache_write
    return {
        "input_tokens": total_input,
        "input_tokens_details": {
            "cached_tokens": usage.cached,
            "cache_write_tokens": usage.cache_write,
        },
        "output_tokens": usage.output,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning},
        "total_tokens": total_input + usage.output,
    }


# Stop reasons --------------------------------------------------------------


def stop_of(status: Any, incomplete: Any, tool_use: bool, refused: bool) -> Stop:
    """The neutral stop of a Responses C{status} and C{incomplete_details}."""
    if status == "incomplete":
        return _INCOMPLETE_STOPS.get(str(as_dict(incomplete).get("reason")), Stop.MAX_TOKENS)
    if tool_use:
        return Stop.TOOL_USE
    return Stop.REFUSAL if refused else Stop.END


def response_json(
    response_id: str,
    created_at: int,
    model: str,
    output: list[JSON],
    stop: Stop | None,
    usage: Usage | None = None,
) -> JSON:
    """
    A whole Responses C{response} object: C{in_progress} while C{stop} is
    C{None}, else C{completed} or C{incomplete} (with its reason).
    """
    reason = _INCOMPLETE_REASONS.get(stop) if stop is not None else None
    status = "in_progress" if stop is None else "incomplete" if reason else "completed"
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "model": model,
        "output": output,
        "error": None,
        "incomplete_details": {"reason": reason} if reason else None,
        "instructions": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "temperature": None,
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "usage": None if stop is None else usage_json(usage),
    }


# Output items -----------------------------------------------------------------


def output_text(text: str) -> JSON:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, texts: list[str], status: str = "completed") -> JSON:
    return {
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "status": status,
        "content": [output_text(t) for t in texts],
    }


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> JSON:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def summary_of(text: str) -> list[JSON]:
    """A reasoning item's C{summary}: empty for no text or the placeholder."""
    if not text or text == THINKING_PLACEHOLDER:
        return []
    return [{"type": "summary_text", "text": text}]


def reasoning_item(item_id: str, text: str, encrypted: str | None) -> JSON:
    item: JSON = {"type": "reasoning", "id": item_id, "summary": summary_of(text)}
    if encrypted is not None:
        item["encrypted_content"] = encrypted
    return item


def client_carrier(reasoning: Reasoning | ReasoningDone) -> tuple[str | None, str | None]:
    """
    The C{encrypted_content} and real item id to give a Responses client
    for this reasoning, so that it comes back whole when the client replays
    it: a Responses item as it is, a C{"<encrypted>@<id>"} signature split
    back, anything else behind one of this module's carrier prefixes.
    """
    if reasoning.encrypted:
        return reasoning.encrypted, reasoning.item_id
    if reasoning.signature and "@" in reasoning.signature:
        encrypted, _, item_id = reasoning.signature.rpartition("@")
        return encrypted, item_id or None
    if reasoning.signature:
        return SIGNATURE_CARRIER + reasoning.signature, None
    if reasoning.redacted:
        return REDACTED_CARRIER + reasoning.redacted, None
    return None, None


def reasoning_of(item: JSON) -> Reasoning:
    """
    The neutral reasoning of a Responses reasoning item, its carrier read
    back: this module's prefixes, a C{"<encrypted>@<id>"} pair (the real id
    of an item a client saw under another), or Copilot's own content.
    """
    summary = item.get("summary")
    texts = [
        str(part.get("text", ""))
        for part in (summary if isinstance(summary, list) else [])
        if isinstance(part, dict)
    ]
    text = "\n\n".join(t for t in texts if t)
    item_id = text_or_none(item.get("id"))
    encrypted = text_or_none(item.get("encrypted_content"))
    if encrypted is None:
        return Reasoning(text=text, item_id=item_id)
    if encrypted.startswith(SIGNATURE_CARRIER):
        return Reasoning(text=text, signature=encrypted.removeprefix(SIGNATURE_CARRIER))
    if encrypted.startswith(REDACTED_CARRIER):
        return Reasoning(text=text, redacted=encrypted.removeprefix(REDACTED_CARRIER))
    if "@" in encrypted:
        encrypted, _, real_id = encrypted.rpartition("@")
        item_id = real_id or item_id
    return Reasoning(text=text, encrypted=encrypted, item_id=item_id)
