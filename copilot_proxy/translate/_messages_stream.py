"""
Anthropic Messages streams, both ways: the native endpoint's events to
neutral events (L{MessagesStreamDecoder}) and neutral events to a client's
Messages stream (L{MessagesStreamEncoder}), one event at a time.

Pure: strings in, events out; events in, bytes out.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..wire import encode
from ._carriers import as_dict, carrier_of, done_of, text_of
from ._chat_pieces import answer_id
from ._chat_stream import error_message
from ._messages_pieces import (
    REASON_STOPS,
    STOP_REASONS,
    messages_usage,
    messages_usage_json,
    tool_id,
)
from ._model import (
    JSON,
    Event,
    Failed,
    Finished,
    ReasoningDelta,
    ReasoningDone,
    Started,
    Stop,
    TextDelta,
    ToolArguments,
    ToolCallStarted,
    Usage,
)
from ._responses_items import THINKING_PLACEHOLDER


def messages_error_event(message: str) -> bytes:
    """A mid-stream error as Anthropic clients read it."""
    error = {"type": "error", "error": {"type": "api_error", "message": message}}
    return encode("error", error)


@dataclass
class _Block:
    """An upstream content block in progress."""

    kind: str
    call: int = -1
    signature: str = ""


class MessagesStreamDecoder:
    """
    The native C{/v1/messages} events to neutral events.  A thinking block's
    signature (its C{signature_delta}s) ends it as a L{ReasoningDone}; a
    stream that ends without C{message_stop} is a L{Failed}.
    """

    def __init__(self) -> None:
        self._started = False
        self._ended = False
        self._blocks: dict[object, _Block] = {}
        self._calls = 0
        self._stop = Stop.END
        self._usage = Usage()
        self._handlers: dict[str, Callable[[JSON], list[Event]]] = {
            "message_start": self._message_start,
            "content_block_start": self._block_start,
            "content_block_delta": self._block_delta,
            "content_block_stop": self._block_stop,
            "message_delta": self._message_delta,
            "message_stop": self._message_stop,
            "error": self._error,
        }

    def feed(self, name: str | None, data: str) -> list[Event]:
        if self._ended:
            return []
        try:
            event = json.loads(data)
        except ValueError:
            return []
        if not isinstance(event, dict):
            return []
        kind = event.get("type") if isinstance(event.get("type"), str) else name
        handler = self._handlers.get(kind or "")
        if handler is None:
            return []  # ping, and events this proxy has no use for
        if kind in ("error", "message_start"):
            return handler(event)
        return self._start({}) + handler(event)

    def end(self) -> list[Event]:
        if self._ended:
            return []
        self._ended = True
        return [Failed("the upstream stream ended before its message was complete")]

    def _start(self, message: JSON) -> list[Event]:
        if self._started:
            return []
        self._started = True
        self._usage = messages_usage(message.get("usage"), message.get("copilot_usage"))
        started = Started(answer_id(message.get("id"), "msg_"), text_of(message.get("model")))
        started.usage = self._usage
        return [started]

    def _message_start(self, event: JSON) -> list[Event]:
        return self._start(as_dict(event.get("message")))

    def _block_start(self, event: JSON) -> list[Event]:
        block = as_dict(event.get("content_block"))
        kind = block.get("type")
        key = event.get("index")
        if kind == "text":
            self._blocks[key] = _Block("text")
            text = text_of(block.get("text"))
            return [TextDelta(text)] if text else []
        if kind == "thinking":
            self._blocks[key] = _Block("thinking", signature=text_of(block.get("signature")))
            thinking = text_of(block.get("thinking"))
            return [ReasoningDelta(thinking)] if thinking else []
        if kind == "redacted_thinking":
            self._blocks[key] = _Block("redacted")
            return [ReasoningDone(redacted=text_of(block.get("data")))]
        if kind == "tool_use":
            call = self._calls
            self._calls += 1
            self._blocks[key] = _Block("tool", call=call)
            events: list[Event] = [
                ToolCallStarted(call, text_of(block.get("id")), text_of(block.get("name")))
            ]
            if as_dict(block.get("input")):
                events.append(ToolArguments(call, json.dumps(block["input"], ensure_ascii=False)))
            return events
        self._blocks[key] = _Block("other")  # server tools and the like
        return []

    def _block_delta(self, event: JSON) -> list[Event]:
        block = self._blocks.get(event.get("index"))
        delta = as_dict(event.get("delta"))
        kind = delta.get("type")
        if block is None:
            return []
        if kind == "text_delta" and block.kind == "text":
            text = text_of(delta.get("text"))
            return [TextDelta(text)] if text else []
        if kind == "thinking_delta" and block.kind == "thinking":
            thinking = text_of(delta.get("thinking"))
            return [ReasoningDelta(thinking)] if thinking else []
        if kind == "signature_delta" and block.kind == "thinking":
            block.signature += text_of(delta.get("signature"))
        elif kind == "input_json_delta" and block.kind == "tool":
            partial = text_of(delta.get("partial_json"))
            return [ToolArguments(block.call, partial)] if partial else []
        return []

    def _block_stop(self, event: JSON) -> list[Event]:
        block = self._blocks.pop(event.get("index"), None)
        if block is not None and block.kind == "thinking":
            return [done_of(block.signature or None)]
        return []

    def _message_delta(self, event: JSON) -> list[Event]:
        reason = as_dict(event.get("delta")).get("stop_reason")
        if isinstance(reason, str):
            self._stop = REASON_STOPS.get(reason, Stop.END)
        self._usage = messages_usage(event.get("usage"), event.get("copilot_usage"), self._usage)
        return []

    def _message_stop(self, event: JSON) -> list[Event]:
        self._ended = True
        return [Finished(self._stop, self._usage)]

    def _error(self, event: JSON) -> list[Event]:
        self._ended = True
        return [Failed(error_message(event.get("error")))]


class MessagesStreamEncoder:
    """
    Neutral events to a client's Messages stream, always well formed:
    C{message_start}, then one block at a time (C{content_block_start}, its
    deltas, C{content_block_stop}), a new block whenever the kind of content
    changes, then C{message_delta} (stop reason, usage) and C{message_stop};
    or, at a L{Failed}, an C{error} event and nothing after.  A tool call's
    arguments that resume after another block started (no upstream does
    this) still go out, on the call's own block index.
    """

    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self._ended = False
        self._next = 0
        self._open: tuple[int, str] | None = None
        self._thought = False
        self._tools: dict[int, int] = {}
        self._usage: Usage | None = None

    @property
    def ended(self) -> bool:
        return self._ended

    def feed(self, events: Iterable[Event]) -> bytes:
        return b"".join(encode(e["type"], e) for e in self.events(events))

    def events(self, events: Iterable[Event]) -> list[JSON]:
        """The Anthropic events (as JSON objects) of these neutral events."""
        out: list[JSON] = []
        for event in events:
            if self._ended:
                break
            if isinstance(event, Failed):
                self._ended = True
                out.append(
                    {"type": "error", "error": {"type": "api_error", "message": event.message}}
                )
                continue
            if not self._started:
                out += self._start(event if isinstance(event, Started) else None)
            out += self._event(event)
        return out

    def _event(self, event: Event) -> list[JSON]:
        if isinstance(event, TextDelta) and event.text:
            return self._delta("text", {"type": "text_delta", "text": event.text})
        if isinstance(event, ReasoningDelta) and event.text:
            out = self._delta("thinking", {"type": "thinking_delta", "thinking": event.text})
            self._thought = True
            return out
        if isinstance(event, ReasoningDone):
            return self._reasoning_done(event)
        if isinstance(event, ToolCallStarted):
            block = {"type": "tool_use", "id": tool_id(event.id), "name": event.name, "input": {}}
            self._tools[event.index], out = self._open_block(block, "tool")
            return out
        if isinstance(event, ToolArguments) and event.delta and event.index in self._tools:
            delta = {"type": "input_json_delta", "partial_json": event.delta}
            return [self._block_delta(self._tools[event.index], delta)]
        if isinstance(event, Finished):
            return self._finish(event)
        return []

    def _start(self, started: Started | None) -> list[JSON]:
        self._started = True
        self._usage = started.usage if started else None
        message: JSON = {
            "id": "msg_" + (started.id if started and started.id else uuid.uuid4().hex),
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": messages_usage_json(self._usage),
        }
        return [{"type": "message_start", "message": message}]

    def _close(self) -> list[JSON]:
        if self._open is None:
            return []
        index, self._open = self._open[0], None
        return [{"type": "content_block_stop", "index": index}]

    def _open_block(self, block: JSON, kind: str) -> tuple[int, list[JSON]]:
        out = self._close()
        index = self._next
        self._next += 1
        self._open = (index, kind)
        self._thought = False
        out.append({"type": "content_block_start", "index": index, "content_block": block})
        return index, out

    def _block_delta(self, index: int, delta: JSON) -> JSON:
        return {"type": "content_block_delta", "index": index, "delta": delta}

    def _delta(self, kind: str, delta: JSON) -> list[JSON]:
        """A delta of a text or thinking block, opening one when another kind is open."""
        out: list[JSON] = []
        if self._open is None or self._open[1] != kind:
            empty = {"type": "text", "text": ""}
            if kind == "thinking":
                empty = {"type": "thinking", "thinking": "", "signature": ""}
            out = self._open_block(empty, kind)[1]
        assert self._open is not None
        out.append(self._block_delta(self._open[0], delta))
        return out

    def _reasoning_done(self, event: ReasoningDone) -> list[JSON]:
        if event.redacted:
            block = {"type": "redacted_thinking", "data": event.redacted}
            return self._open_block(block, "redacted")[1] + self._close()
        carrier = carrier_of(event)
        thinking = self._open is not None and self._open[1] == "thinking"
        if not thinking and carrier is None:
            return []
        out: list[JSON] = []
        if not thinking:
            out = self._open_block(
                {"type": "thinking", "thinking": "", "signature": ""}, "thinking"
            )[1]
        assert self._open is not None
        index = self._open[0]
        if carrier and not self._thought and not event.signature:
            # A Responses item with no summary: clients drop empty thinking blocks.
            out.append(
                self._block_delta(
                    index, {"type": "thinking_delta", "thinking": THINKING_PLACEHOLDER}
                )
            )
        if carrier:
            out.append(self._block_delta(index, {"type": "signature_delta", "signature": carrier}))
        return out + self._close()

    def _finish(self, event: Finished) -> list[JSON]:
        self._ended = True
        out = self._close()
        stop = event.stop
        if stop is Stop.END and self._tools:
            stop = Stop.TOOL_USE
        delta: JSON = {
            "type": "message_delta",
            "delta": {"stop_reason": STOP_REASONS[stop], "stop_sequence": None},
            "usage": messages_usage_json(event.usage or self._usage),
        }
        usage = event.usage or self._usage
        if usage is not None and usage.copilot_usage is not None:
            delta["copilot_usage"] = usage.copilot_usage
        return [*out, delta, {"type": "message_stop"}]
