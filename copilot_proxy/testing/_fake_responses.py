"""
The fake's answers on Copilot's C{POST /responses}: one C{response} object,
or the server-sent event sequence of the 2026 notes section 2.3, built from
the same output items so both shapes tell the same turn.  Pure.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from ._catalog_2026 import CATALOG_2026
from ._fake_rules import Tokens, copilot_usage, responses_usage

#: The text of a tool-calling turn, as in the Chat Completions tool script.
TOOL_TURN_TEXT = "Let me check."
#: The text of a non-streamed answer, as on Chat Completions.
ANSWER_TEXT = "Hello from the fake."
#: Arguments of the first and second scripted call, each in two pieces.
CALL_ARGUMENTS = (('{"city":', ' "Paris"}'), ('{"city":', ' "Tokyo"}'))
#: What C{x-fake-terminal} may ask for; C{none} ends the stream without one.
TERMINALS = ("completed", "incomplete", "failed", "error", "none")

_KEY = b"fake-copilot-reasoning"
_INPUT_TOKENS, _CACHED_TOKENS, _REASONING_TOKENS = 12, 2, 8


def encrypted_reasoning(model: str, item_id: str) -> str:
    """The C{encrypted_content} the fake issues for a reasoning item."""
    mac = hmac.new(_KEY, f"{model}\0{item_id}".encode(), hashlib.sha256).hexdigest()
    return "gAAAAfake" + mac


def reasoning_refusal(payload: dict[str, Any]) -> dict[str, Any] | None:
    """
    The 400 body for a C{/responses} request replaying a reasoning item
    whose C{encrypted_content} the fake did not issue for that item id (for
    any of its models), in the words of the Responses API (Codex and
    gateway reports of 2026); L{None} when every one verifies.
    """
    items = payload.get("input")
    models = {str(payload.get("model"))} | {str(e.get("id")) for e in CATALOG_2026}
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict) or item.get("type") != "reasoning":
            continue
        encrypted, item_id = item.get("encrypted_content"), item.get("id")
        if encrypted is None:
            continue
        if not any(encrypted == encrypted_reasoning(m, str(item_id)) for m in models):
            message = (
                f"The encrypted content for item {item_id} could not be verified. "
                "Reason: Encrypted content could not be decrypted or parsed."
            )
            return {
                "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_encrypted_content",
                }
            }
    return None


@dataclass(frozen=True)
class Call:
    call_id: str
    name: str
    pieces: tuple[str, ...]

    @property
    def item_id(self) -> str:
        return "fc_" + self.call_id.removeprefix("call_")

    @property
    def arguments(self) -> str:
        return "".join(self.pieces)


@dataclass(frozen=True)
class Turn:
    """What one answer says: reasoning, text in deltas, then function calls."""

    model: str
    reasoning: bool
    encrypted: bool
    deltas: tuple[str, ...]
    calls: tuple[Call, ...]
    payload: dict[str, Any]

    @property
    def text(self) -> str:
        return "".join(self.deltas)

    @property
    def tokens(self) -> Tokens:
        reasoning = _REASONING_TOKENS if self.reasoning else 0
        output = len(self.deltas) + 7 * len(self.calls) + reasoning
        return Tokens(_INPUT_TOKENS, output, _CACHED_TOKENS, reasoning)


def _tool_names(payload: dict[str, Any]) -> list[str]:
    names = []
    for tool in payload.get("tools") or []:
        if isinstance(tool, dict):
            # Responses tools are flat; tolerate the Chat Completions nesting.
            name = tool.get("name") or (tool.get("function") or {}).get("name")
            if isinstance(name, str):
                names.append(name)
    return names


def _answered_tools(payload: dict[str, Any]) -> bool:
    items = payload.get("input")
    return isinstance(items, list) and any(
        isinstance(item, dict) and item.get("type") == "function_call_output" for item in items
    )


def scripted_calls(names: list[str], count: int) -> tuple[Call, ...]:
    """C{count} calls (1 or 2) of the first tools named (C{get_weather} without)."""
    names = names or ["get_weather"]
    calls = []
    for i in range(count):
        suffix = "" if i == 0 else f"_{i + 1}"
        calls.append(
            Call("call_weather" + suffix, names[min(i, len(names) - 1)], CALL_ARGUMENTS[i])
        )
    return tuple(calls)


def plan_turn(
    payload: dict[str, Any], deltas: list[str], script: str | None, reasons: bool
) -> Turn:
    """
    The turn answering C{payload}: with C{x-fake-script: tools} (or
    C{parallel-tools}) one (or two) calls; else one call of the first tool
    when tools are given, C{tool_choice} is not C{none} and no tool result is
    in the input; text C{deltas} otherwise, and L{TOOL_TURN_TEXT} before calls.

    @param reasons: whether the model reasons (a reasoning item comes first).
    """
    names = _tool_names(payload)
    count = 0
    if script in ("tools", "parallel-tools"):
        count = 2 if script == "parallel-tools" else 1
    elif names and payload.get("tool_choice") != "none" and not _answered_tools(payload):
        count = 1
    include = payload.get("include") or []
    return Turn(
        model=str(payload.get("model", "gpt-5.4")),
        reasoning=reasons or isinstance(payload.get("reasoning"), dict),
        encrypted="reasoning.encrypted_content" in include,
        deltas=(TOOL_TURN_TEXT,) if count else tuple(deltas),
        calls=scripted_calls(names, count),
        payload=payload,
    )


def _reasoning_item(turn: Turn) -> dict[str, Any]:
    item: dict[str, Any] = {"id": "rs_fake", "type": "reasoning", "summary": []}
    if turn.encrypted:
        item["encrypted_content"] = encrypted_reasoning(turn.model, "rs_fake")
    return item


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}


def _message_item(turn: Turn, done: bool) -> dict[str, Any]:
    return {
        "id": "msg_fake",
        "type": "message",
        "status": "completed" if done else "in_progress",
        "role": "assistant",
        "content": [_text_part(turn.text)] if done else [],
    }


def _call_item(call: Call, done: bool) -> dict[str, Any]:
    return {
        "id": call.item_id,
        "type": "function_call",
        "status": "completed" if done else "in_progress",
        "call_id": call.call_id,
        "name": call.name,
        "arguments": call.arguments if done else "",
    }


def output_items(turn: Turn) -> list[dict[str, Any]]:
    """The complete output items, in C{output_index} order."""
    items = [_reasoning_item(turn)] if turn.reasoning else []
    items.append(_message_item(turn, done=True))
    items += [_call_item(call, done=True) for call in turn.calls]
    return items


def response_object(turn: Turn, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
    """The C{response} object (the body, or inside lifecycle events)."""
    payload = turn.payload
    body: dict[str, Any] = {
        "id": "resp_fake",
        "object": "response",
        "created_at": 1700000000,
        "model": turn.model,
        "status": status,
        "output": output,
        "usage": None,
        "error": None,
        "incomplete_details": None,
        "instructions": payload.get("instructions"),
        "metadata": {},
        "parallel_tool_calls": payload.get("parallel_tool_calls", True),
        "temperature": payload.get("temperature", 1.0),
        "tool_choice": payload.get("tool_choice", "auto"),
        "tools": payload.get("tools", []),
        "top_p": payload.get("top_p", 1.0),
        "store": False,
    }
    if status in ("completed", "incomplete", "failed"):
        body["usage"] = responses_usage(turn.tokens)
    if status == "incomplete":
        body["incomplete_details"] = {"reason": "max_output_tokens"}
    if status == "failed":
        body["error"] = {"code": "server_error", "message": "The fake failed this response."}
    return body


def response_body(turn: Turn, terminal: str = "completed") -> dict[str, Any]:
    """The non-streamed answer, with Copilot's top-level C{copilot_usage}."""
    status = terminal if terminal in ("incomplete", "failed") else "completed"
    body = response_object(turn, status, output_items(turn))
    body["copilot_usage"] = copilot_usage(turn.model, turn.tokens)
    return body


class _Events:
    """Numbers events as they are added, as C{sequence_number} does."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def add(self, kind: str, **fields: Any) -> None:
        data = {"type": kind, "sequence_number": len(self.frames), **fields}
        self.frames.append(
            b"event: " + kind.encode() + b"\ndata: " + json.dumps(data).encode() + b"\n\n"
        )


def _message_events(events: _Events, turn: Turn, index: int) -> None:
    where = {"item_id": "msg_fake", "output_index": index, "content_index": 0}
    events.add("response.output_item.added", output_index=index, item=_message_item(turn, False))
    events.add("response.content_part.added", **where, part=_text_part(""))
    for delta in turn.deltas:
        events.add("response.output_text.delta", **where, delta=delta, logprobs=[])
    events.add("response.output_text.done", **where, text=turn.text, logprobs=[])
    events.add("response.content_part.done", **where, part=_text_part(turn.text))
    events.add("response.output_item.done", output_index=index, item=_message_item(turn, True))


def _call_events(events: _Events, call: Call, index: int) -> None:
    where = {"item_id": call.item_id, "output_index": index}
    events.add("response.output_item.added", output_index=index, item=_call_item(call, False))
    for piece in call.pieces:
        events.add("response.function_call_arguments.delta", **where, delta=piece)
    events.add(
        "response.function_call_arguments.done", **where, arguments=call.arguments, name=call.name
    )
    events.add("response.output_item.done", output_index=index, item=_call_item(call, True))


def response_events(turn: Turn, terminal: str = "completed") -> list[bytes]:
    """
    The stream: C{response.created}, C{response.in_progress}, each output
    item (reasoning with C{encrypted_content} only in its C{done}; message
    content part and text deltas; function call argument deltas), then one
    terminal event per C{terminal} (L{TERMINALS}).
    """
    events = _Events()
    events.add("response.created", response=response_object(turn, "in_progress", []))
    events.add("response.in_progress", response=response_object(turn, "in_progress", []))
    index = 0
    if turn.reasoning:
        added = {"id": "rs_fake", "type": "reasoning", "summary": []}
        events.add("response.output_item.added", output_index=0, item=added)
        events.add("response.output_item.done", output_index=0, item=_reasoning_item(turn))
        index = 1
    _message_events(events, turn, index)
    for offset, call in enumerate(turn.calls, start=index + 1):
        _call_events(events, call, offset)
    usage = copilot_usage(turn.model, turn.tokens)
    if terminal in ("completed", "incomplete", "failed"):
        response = response_object(turn, terminal, output_items(turn))
        events.add(f"response.{terminal}", response=response, copilot_usage=usage)
    elif terminal == "error":
        events.add(
            "error", code="server_error", message="The fake broke off this response.", param=None
        )
    return events.frames
