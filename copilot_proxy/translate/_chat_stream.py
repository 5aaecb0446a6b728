"""
Chat Completions streams, both ways: C{chat.completion.chunk} events to
neutral events (L{ChatStreamDecoder}) and back (L{ChatStreamEncoder}), one
event at a time.

Pure: strings in, events out; events in, bytes out.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from typing import Any

from ._carriers import as_dict, carrier_of, done_of, text_of
from ._chat_pieces import FINISH_STOPS, STOP_FINISHES, answer_id, chat_usage, chat_usage_json
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
    TranslationError,
    Usage,
)

_DONE = b"data: [DONE]\n\n"


def error_message(error: Any) -> str:
    """The message of an upstream C{error} value."""
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return str(error)[:500]


class ChatStreamDecoder:
    """
    Chat completion chunks to neutral events.  The answer finishes at
    C{[DONE]}, or at the end of the body once a C{finish_reason} came (the
    usage chunk follows the finish, so it waits for one of those); a body
    that ends with neither is a L{Failed}.  Tool calls are told apart by
    their C{index} (which Claude through Copilot starts at 1), renumbered
    from 0 in the order they start.
    """

    def __init__(self) -> None:
        self._started = False
        self._ended = False
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._calls: dict[int, int] = {}

    def feed(self, name: str | None, data: str) -> list[Event]:
        text = data.strip()
        if text == "[DONE]":
            return self._finished()
        try:
            chunk = json.loads(text)
        except ValueError:
            return []
        return self.chunk(chunk)

    def end(self) -> list[Event]:
        if self._ended:
            return []
        if self._finish is not None:
            return self._finished()
        self._ended = True
        return [Failed("the upstream stream ended before its answer was complete")]

    def chunk(self, chunk: Any) -> list[Event]:
        """
        The neutral events of one parsed chunk.

        @raise TranslationError: when its C{choices} are not a list.
        """
        if self._ended or not isinstance(chunk, dict):
            return []
        if "error" in chunk and not chunk.get("choices"):
            self._ended = True
            return [Failed(error_message(chunk["error"]))]
        events = self._start(chunk)
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise TranslationError("a chunk's choices are not a list")
        for choice in choices:
            if isinstance(choice, dict):
                events += self._choice(choice)
        if isinstance(chunk.get("usage"), dict):
            copilot = self._usage.copilot_usage if self._usage else None
            self._usage = chat_usage(chunk["usage"], copilot)
        if isinstance(chunk.get("copilot_usage"), dict):
            self._usage = self._usage or Usage()
            self._usage.copilot_usage = chunk["copilot_usage"]
        return events

    def _start(self, chunk: JSON | None) -> list[Event]:
        if self._started:
            return []
        self._started = True
        chunk = chunk or {}
        usage = chunk.get("usage")
        return [
            Started(
                id=answer_id(chunk.get("id"), "chatcmpl-"),
                model=text_of(chunk.get("model")),
                usage=chat_usage(usage) if isinstance(usage, dict) else None,
            )
        ]

    def _choice(self, choice: JSON) -> list[Event]:
        delta = as_dict(choice.get("delta"))
        events: list[Event] = []
        thinking = delta.get("reasoning_text")
        if isinstance(thinking, str) and thinking:
            events.append(ReasoningDelta(thinking))
        opaque = delta.get("reasoning_opaque")
        if isinstance(opaque, str) and opaque:
            events.append(done_of(opaque))
        content = delta.get("content")
        if isinstance(content, str) and content:
            events.append(TextDelta(content))
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, dict):
                events += self._tool_delta(call)
        if choice.get("finish_reason"):
            self._finish = str(choice["finish_reason"])
        return events

    def _tool_delta(self, call: JSON) -> list[Event]:
        position = call.get("index")
        if isinstance(position, int) and not isinstance(position, bool):
            key = position
        elif call.get("id") or not self._calls:
            key = -1 - len(self._calls)  # no index: a new call starts with an id
        else:
            key = list(self._calls)[-1]
        function = as_dict(call.get("function"))
        events: list[Event] = []
        if key not in self._calls:
            self._calls[key] = len(self._calls)
            name = text_of(function.get("name"))
            events.append(ToolCallStarted(self._calls[key], text_of(call.get("id")), name))
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            events.append(ToolArguments(self._calls[key], arguments))
        return events

    def _finished(self) -> list[Event]:
        if self._ended:
            return []
        events = self._start(None)
        self._ended = True
        stop = FINISH_STOPS.get(self._finish or "stop", Stop.END)
        if stop is Stop.END and self._calls:
            stop = Stop.TOOL_USE
        events.append(Finished(stop, self._usage))
        return events


def _line(payload: JSON) -> bytes:
    return (
        b"data: "
        + json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        + b"\n\n"
    )


def chat_error_event(message: str) -> bytes:
    """A mid-stream error as OpenAI-style clients read it: an C{error} object, no C{[DONE]}."""
    return _line({"error": {"message": message, "type": "api_error", "code": None}})


class ChatStreamEncoder:
    """
    Neutral events to the chunks of a Chat Completions stream: a first chunk
    with the assistant role, content, Copilot's C{reasoning_text} and
    C{reasoning_opaque}, tool call deltas by call index, the finish, a usage
    chunk (C{choices: []}) and C{[DONE]}.  A L{Failed} ends it with an error
    object and no C{[DONE]}.
    """

    def __init__(self, model: str) -> None:
        self._model = model
        self._id = ""
        self._created = int(time.time())
        self._started = False
        self._ended = False
        self._called = False
        self._usage: Usage | None = None

    def feed(self, events: Iterable[Event]) -> bytes:
        out: list[bytes] = []
        for event in events:
            if self._ended:
                break
            if isinstance(event, Failed):
                self._ended = True
                out.append(chat_error_event(event.message))
                continue
            if not self._started:
                out.append(self._start(event if isinstance(event, Started) else None))
            if isinstance(event, Finished):
                out += self._finish(event)
            elif not isinstance(event, Started):
                delta = self._delta(event)
                if delta:
                    out.append(self._chunk(delta))
        return b"".join(out)

    def _start(self, started: Started | None) -> bytes:
        self._started = True
        self._id = "chatcmpl-" + (started.id if started and started.id else uuid.uuid4().hex)
        self._usage = started.usage if started else None
        return self._chunk({"role": "assistant", "content": ""})

    def _chunk(self, delta: JSON, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return _line(self._envelope([choice]))

    def _envelope(self, choices: list[JSON]) -> JSON:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": choices,
        }

    def _delta(self, event: Event) -> JSON | None:
        if isinstance(event, TextDelta):
            return {"content": event.text} if event.text else None
        if isinstance(event, ReasoningDelta):
            return {"reasoning_text": event.text} if event.text else None
        if isinstance(event, ReasoningDone):
            carrier = carrier_of(event)
            return {"reasoning_opaque": carrier} if carrier else None
        if isinstance(event, ToolCallStarted):
            self._called = True
            call_id = event.id or "call_" + uuid.uuid4().hex
            function = {"name": event.name, "arguments": ""}
            call = {"index": event.index, "id": call_id, "type": "function", "function": function}
            return {"tool_calls": [call]}
        if isinstance(event, ToolArguments) and event.delta:
            return {"tool_calls": [{"index": event.index, "function": {"arguments": event.delta}}]}
        return None

    def _finish(self, event: Finished) -> list[bytes]:
        self._ended = True
        stop = event.stop
        if stop is Stop.END and self._called:
            stop = Stop.TOOL_USE
        out = [self._chunk({}, STOP_FINISHES[stop])]
        usage = event.usage or self._usage
        if usage is not None:
            last = self._envelope([])
            last["usage"] = chat_usage_json(usage)
            if usage.copilot_usage is not None:
                last["copilot_usage"] = usage.copilot_usage
            out.append(_line(last))
        out.append(_DONE)
        return out
