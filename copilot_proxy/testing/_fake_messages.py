"""
The fake's answers on Copilot's native C{POST /v1/messages}: thinking blocks
signed by the fake, text, tool use, Copilot's usage fields (the 2026 notes,
section 3), and the validation that refuses signatures it did not issue and
assistant prefill.  Pure.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from ._fake_responses import TOOL_TURN_TEXT, Call, scripted_calls
from ._fake_rules import Reported, Tokens, anthropic_usage, copilot_usage, reported

#: The thinking the fake streams, in its pieces.
THINKING_PIECES = ("Ponder", "ing.")
#: The text of a non-streamed answer.
ANSWER_TEXT = "Hello natively."

_KEY = b"fake-copilot-thinking"
_THINKING_TOKENS = 3
_INPUT_TOKENS = 3


def thinking_signature(thinking: str) -> str:
    """The signature the fake issues for a thinking block with this text."""
    return "sig-" + hmac.new(_KEY, thinking.encode(), hashlib.sha256).hexdigest()[:32]


def native_stream_text(deltas: int) -> str:
    """The text a native stream of C{deltas} text deltas tells (no tools)."""
    return "".join(f"tok{i} " for i in range(deltas))


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "code": "invalid_request_body"}}


def messages_refusal(payload: dict[str, Any]) -> dict[str, Any] | None:
    """
    The 400 body for a Messages request Copilot refuses, or L{None}: a
    thinking block whose signature the fake did not issue for its text, or a
    conversation that ends with an assistant message (prefill).
    """
    messages = payload.get("messages")
    if not isinstance(messages, list):
        return None
    for n, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for m, block in enumerate(content):
            if not isinstance(block, dict) or block.get("type") != "thinking":
                continue
            signature = block.get("signature")
            text = block.get("thinking")
            if not isinstance(text, str) or signature != thinking_signature(text):
                return _error(f"messages.{n}.content.{m}: Invalid signature in thinking block")
    if messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant":
        return _error(
            "This model does not support assistant message prefill. "
            "The conversation must end with a user message."
        )
    return None


def _thinks(payload: Any) -> bool:
    thinking = payload.get("thinking") if isinstance(payload, dict) else None
    return isinstance(thinking, dict) and thinking.get("type") != "disabled"


def _answered_tools(payload: dict[str, Any]) -> bool:
    messages = payload.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    content = last.get("content") if isinstance(last, dict) else None
    return isinstance(content, list) and any(
        isinstance(block, dict) and block.get("type") == "tool_result" for block in content
    )


def native_calls(payload: Any, script: str | None = None) -> tuple[Call, ...]:
    """
    The tool uses a Messages answer makes: with C{x-fake-script: tools} (or
    C{parallel-tools}) one (or two); else one of the first tool when tools are
    given and the last message holds no C{tool_result}.
    """
    if not isinstance(payload, dict):
        return ()
    names = [t["name"] for t in payload.get("tools") or [] if isinstance(t, dict) and "name" in t]
    if script in ("tools", "parallel-tools"):
        return scripted_calls(names, 2 if script == "parallel-tools" else 1)
    if names and not _answered_tools(payload):
        return scripted_calls(names, 1)
    return ()


def _tool_use_id(call: Call) -> str:
    return "toolu_" + call.call_id.removeprefix("call_")


def _tokens(payload: Any, deltas: int | None, calls: tuple[Call, ...]) -> Tokens:
    """
    What an answer counts: the non-streamed one (C{deltas} L{None}) two text
    tokens, a stream one per text delta (one in a turn that uses tools).
    """
    text_tokens = 2 if deltas is None else 1 if calls else deltas
    thinking = _THINKING_TOKENS if _thinks(payload) else 0
    return Tokens(_INPUT_TOKENS, text_tokens + thinking + 7 * len(calls), 0, thinking)


def native_reported(payload: Any, deltas: int | None, script: str | None = None) -> Reported:
    """
    The usage the answer to C{payload} reports: the non-streamed one
    (C{deltas} L{None}, L{native_message}) or the stream of C{deltas} text
    deltas (L{native_events}).
    """
    return reported(_model(payload), _tokens(payload, deltas, native_calls(payload, script)))


def _model(payload: Any) -> str:
    model = payload.get("model") if isinstance(payload, dict) else None
    return str(model) if model is not None else "claude-sonnet-4"


def native_message(payload: Any, script: str | None = None) -> dict[str, Any]:
    """The non-streamed answer, with Copilot's top-level C{copilot_usage}."""
    calls = native_calls(payload, script)
    content: list[dict[str, Any]] = []
    if _thinks(payload):
        thinking = "".join(THINKING_PIECES)
        content.append(
            {"type": "thinking", "thinking": thinking, "signature": thinking_signature(thinking)}
        )
    content.append({"type": "text", "text": TOOL_TURN_TEXT if calls else ANSWER_TEXT})
    content += [
        {
            "type": "tool_use",
            "id": _tool_use_id(c),
            "name": c.name,
            "input": json.loads(c.arguments),
        }
        for c in calls
    ]
    tokens = _tokens(payload, None, calls)
    usage = anthropic_usage(tokens)
    if not _thinks(payload):
        del usage["output_tokens_details"]
    return {
        "id": "msg_native",
        "type": "message",
        "role": "assistant",
        "model": _model(payload),
        "content": content,
        "stop_reason": "tool_use" if calls else "end_turn",
        "stop_sequence": None,
        "usage": usage,
        "copilot_usage": copilot_usage(_model(payload), tokens),
    }


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + json.dumps(data).encode() + b"\n\n"


def _block(index: int, start: dict[str, Any], deltas: list[dict[str, Any]]) -> list[bytes]:
    events = [
        _sse(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": start},
        )
    ]
    for delta in deltas:
        events.append(
            _sse(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        )
    events.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def native_events(payload: Any, deltas: int, script: str | None = None) -> list[bytes]:
    """
    The native Anthropic stream for a Messages request, one SSE event per
    item: C{message_start}, a C{ping}, a C{thinking} block when the request
    asked for thinking (L{THINKING_PIECES} as C{thinking_delta}s, then one
    C{signature_delta} carrying L{thinking_signature}), a text block of
    C{deltas} C{text_delta}s (C{"tok0 "}, C{"tok1 "}, ...; L{TOOL_TURN_TEXT}
    in a turn that uses tools), C{tool_use} blocks with C{input_json_delta}
    pieces (L{native_calls}), C{message_delta} (stop reason, usage with
    C{output_tokens_details.thinking_tokens}, C{copilot_usage}) and
    C{message_stop}.
    """
    calls = native_calls(payload, script)
    tokens = _tokens(payload, deltas, calls)
    start = {**native_message(payload, script), "content": [], "stop_reason": None}
    del start["copilot_usage"]
    start["usage"] = {**anthropic_usage(tokens), "output_tokens": 1}
    del start["usage"]["output_tokens_details"]
    events = [_sse("message_start", {"type": "message_start", "message": start})]
    events.append(_sse("ping", {"type": "ping"}))
    index = 0
    if _thinks(payload):
        thinking = "".join(THINKING_PIECES)
        pieces: list[dict[str, Any]] = [
            {"type": "thinking_delta", "thinking": piece} for piece in THINKING_PIECES
        ]
        pieces.append({"type": "signature_delta", "signature": thinking_signature(thinking)})
        events += _block(0, {"type": "thinking", "thinking": "", "signature": ""}, pieces)
        index = 1
    texts = [TOOL_TURN_TEXT] if calls else [f"tok{i} " for i in range(deltas)]
    text_deltas = [{"type": "text_delta", "text": text} for text in texts]
    events += _block(index, {"type": "text", "text": ""}, text_deltas)
    for call in calls:
        index += 1
        begin = {"type": "tool_use", "id": _tool_use_id(call), "name": call.name, "input": {}}
        json_deltas = [{"type": "input_json_delta", "partial_json": p} for p in call.pieces]
        events += _block(index, begin, json_deltas)
    usage: dict[str, Any] = {"output_tokens": tokens.output}
    usage["output_tokens_details"] = {"thinking_tokens": tokens.reasoning}
    events += [
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": "tool_use" if calls else "end_turn",
                    "stop_sequence": None,
                },
                "usage": usage,
                "copilot_usage": copilot_usage(_model(payload), tokens),
            },
        ),
        _sse("message_stop", {"type": "message_stop"}),
    ]
    return events
