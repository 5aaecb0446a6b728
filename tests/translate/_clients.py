"""
What a client makes of a translated stream: the bytes parsed back into
events and checked against each shape's grammar, and the real SDKs'
accumulators run over them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import openai
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message as AnthropicMessage
from anthropic.types import RawMessageStreamEvent
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import TypeAdapter

from copilot_proxy.wire import SSESplitter

JSON = dict[str, Any]

ANTHROPIC_EVENT: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)


@dataclass
class Seen:
    """The content a client saw in one stream."""

    text: str = ""
    thinking: str = ""
    signatures: list[str] = field(default_factory=list)
    tools: list[tuple[str, str]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    stop: str | None = None
    error: str | None = None


def sse(out: bytes) -> list[tuple[str, str]]:
    """The (name, data) of every event in C{out}, which must end on an event boundary."""
    splitter = SSESplitter()
    events = [(e.name, e.data) for e in splitter.feed(out)]
    assert splitter.close() == [], "the stream stops mid-event"
    return events


def anthropic_events(out: bytes) -> list[JSON]:
    """The Anthropic events of C{out}: named as their type, each valid for the SDK."""
    events = []
    for name, data in sse(out):
        event = json.loads(data)
        assert event["type"] == name
        if name != "error":
            ANTHROPIC_EVENT.validate_python(event)
        events.append(event)
    return events


def check_anthropic(events: list[JSON]) -> Seen:
    """
    Assert the Messages stream grammar (C{message_start} first, one block
    open at a time, every block stopped, C{message_delta} then
    C{message_stop} last, or an C{error} last) and return what it carried.
    """
    seen = Seen()
    assert events and events[0]["type"] in ("message_start", "error")
    if events[-1]["type"] == "error":
        seen.error = events[-1]["error"]["message"]
        body = events[1:-1]
    else:
        assert [e["type"] for e in events[-2:]] == ["message_delta", "message_stop"]
        seen.stop = events[-2]["delta"]["stop_reason"]
        body = events[1:-2]
    open_block: int | None = None
    kinds: dict[int, str] = {}
    arguments: dict[int, str] = {}
    for e in body:
        kind = e["type"]
        if kind == "content_block_start":
            assert open_block is None, "a block started before the previous one stopped"
            assert e["index"] == len(kinds), "block indexes count up from 0"
            open_block = e["index"]
            block = e["content_block"]
            kinds[e["index"]] = block["type"]
            if block["type"] == "tool_use":
                seen.tools.append((block["name"], ""))
                seen.ids.append(block["id"])
                arguments[e["index"]] = ""
        elif kind == "content_block_delta":
            assert e["index"] == open_block, "a delta outside its open block"
            _anthropic_delta(seen, kinds[e["index"]], e["delta"], arguments, e["index"])
        elif kind == "content_block_stop":
            assert e["index"] == open_block
            open_block = None
        else:
            raise AssertionError(f"unexpected event {kind}")
    if seen.error is None:
        assert open_block is None, "a block was left open"
    order = sorted(arguments)
    seen.tools = [(name, arguments[i]) for (name, _), i in zip(seen.tools, order, strict=True)]
    return seen


def _anthropic_delta(
    seen: Seen, kind: str, delta: JSON, arguments: dict[int, str], index: int
) -> None:
    if delta["type"] == "text_delta":
        assert kind == "text"
        seen.text += delta["text"]
    elif delta["type"] == "thinking_delta":
        assert kind == "thinking"
        seen.thinking += delta["thinking"]
    elif delta["type"] == "signature_delta":
        assert kind == "thinking"
        seen.signatures.append(delta["signature"])
    else:
        assert kind == "tool_use" and delta["type"] == "input_json_delta"
        arguments[index] += delta["partial_json"]


def anthropic_message(events: list[JSON]) -> AnthropicMessage:
    """The message the Anthropic SDK assembles from a stream's events."""
    snapshot: Any = None
    buffers: dict[int, bytes] = {}
    for event in events:
        parsed = ANTHROPIC_EVENT.validate_python(event)
        snapshot = accumulate_event(event=parsed, current_snapshot=snapshot, json_bufs=buffers)
    assert snapshot is not None
    return AnthropicMessage.model_validate(snapshot.to_dict())


def chat_lines(out: bytes) -> list[str]:
    """The data of every event of a Chat Completions stream; no event has a name."""
    events = sse(out)
    assert all(name == "" for name, _ in events)
    return [data for _, data in events]


def check_chat(out: bytes) -> Seen:
    """
    Assert a Chat Completions stream is well formed (chunks the SDK reads,
    C{[DONE]} last, or an error object last and no C{[DONE]}) and return
    what it carried.
    """
    lines = chat_lines(out)
    seen = Seen()
    if lines[-1] != "[DONE]":
        error = json.loads(lines[-1])
        seen.error = error["error"]["message"]
        lines = lines[:-1]
        assert "[DONE]" not in lines
    else:
        lines = lines[:-1]
    chunks = [ChatCompletionChunk.model_validate(json.loads(line)) for line in lines]
    if seen.error is not None:
        return _partial_chat(seen, chunks)
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(chunk)
    final: ChatCompletion
    try:
        final = state.get_final_completion()
    except openai.LengthFinishReasonError as e:  # the SDK's parse helper refuses "length"
        final = e.completion
    choice = final.choices[0]
    seen.text = choice.message.content or ""
    seen.stop = choice.finish_reason
    for call in choice.message.tool_calls or ():
        assert call.type == "function"
        seen.tools.append((call.function.name, call.function.arguments))
        seen.ids.append(call.id)
    extras = [c.choices[0].delta.model_extra or {} for c in chunks if c.choices]
    seen.thinking = "".join(str(e.get("reasoning_text", "")) for e in extras)
    seen.signatures = [str(e["reasoning_opaque"]) for e in extras if e.get("reasoning_opaque")]
    return seen


def _partial_chat(seen: Seen, chunks: list[ChatCompletionChunk]) -> Seen:
    for chunk in chunks:
        for choice in chunk.choices:
            seen.text += choice.delta.content or ""
    return seen


def chat_completion(body: JSON) -> ChatCompletion:
    """A whole chat completion as the OpenAI SDK reads it."""
    return ChatCompletion.model_validate(body)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """C{data} in pieces of the given sizes (the rest as the last piece)."""
    pieces = []
    at = 0
    for cut in cuts:
        pieces.append(data[at : at + cut])
        at += cut
    pieces.append(data[at:])
    return pieces
