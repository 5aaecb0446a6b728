"""
Responses streams, both ways, one event at a time: L{ResponsesStreamDecoder}
reads Copilot's C{/responses} events into neutral ones,
L{ResponsesStreamEncoder} writes neutral events as a client's
C{/v1/responses} stream.

Copilot's item ids may change between C{output_item.added} and
C{output_item.done}, and some added items have none (2026 notes, 2.5):
everything here is keyed by C{output_index}, never by item id.

Pure: strings in, events out; events in, bytes out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..wire import encode
from ._carriers import new_id
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
)
from ._responses_items import (
    client_carrier,
    function_call_item,
    load_object,
    message_item,
    output_text,
    reasoning_item,
    reasoning_of,
    response_json,
    stop_of,
    text_or_none,
    usage_of,
)

#: The neutral failure of a stream cut short.
ENDED_EARLY = "the upstream stream ended before the response completed"


@dataclass
class _UpstreamItem:
    """What the decoder knows of one upstream output item."""

    kind: str
    tool_index: int | None = None
    arguments_seen: bool = False
    text_seen: bool = False


class ResponsesStreamDecoder:
    """
    Copilot's C{/responses} events to neutral events.  Tool calls get
    neutral indexes in the order their items were added; text and reasoning
    a summary or item carries only when done are sent then; a terminal
    event ends the stream, and a stream without one ends in L{Failed}.
    """

    def __init__(self) -> None:
        self._started = False
        self._ended = False
        self._items: dict[int, _UpstreamItem] = {}
        self._tools = 0
        self._refused = False

    def feed(self, name: str | None, data: str) -> list[Event]:
        if self._ended or data.strip() == "[DONE]":
            return []
        payload = load_object(data)
        kind = payload.get("type")
        handler = _HANDLERS.get(kind if isinstance(kind, str) else name or "")
        if handler is None:
            return []
        events = handler(self, payload)
        if not self._started:
            self._started = True
            if not events or not isinstance(events[0], Started):
                events.insert(0, _started(payload))
        return events

    def end(self) -> list[Event]:
        if self._ended:
            return []
        self._ended = True
        return [Failed(ENDED_EARLY)]

    # Lifecycle -----------------------------------------------------------

    def _created(self, payload: JSON) -> list[Event]:
        return [] if self._started else [_started(payload)]

    def _completed(self, payload: JSON) -> list[Event]:
        self._ended = True
        response = _object(payload.get("response"))
        output = response.get("output")
        called = isinstance(output, list) and any(
            isinstance(i, dict) and i.get("type") == "function_call" for i in output
        )
        incomplete = payload.get("type") == "response.incomplete"
        stop = stop_of(
            "incomplete" if incomplete else response.get("status"),
            response.get("incomplete_details"),
            self._tools > 0 or called,
            self._refused,
        )
        copilot = payload.get("copilot_usage", response.get("copilot_usage"))
        return [Finished(stop, usage_of(response.get("usage"), copilot))]

    def _failed(self, payload: JSON) -> list[Event]:
        self._ended = True
        error = _object(_object(payload.get("response")).get("error"))
        if payload.get("type") == "error":
            error = _object(payload.get("error")) or payload
        message = text_or_none(error.get("message")) or "the upstream response failed"
        return [Failed(message)]

    # Items ----------------------------------------------------------------

    def _added(self, payload: JSON) -> list[Event]:
        index, item = _index(payload), _object(payload.get("item"))
        if index in self._items:
            return []
        return self._open(index, item)

    def _open(self, index: int, item: JSON) -> list[Event]:
        state = _UpstreamItem(str(item.get("type", "")))
        self._items[index] = state
        if state.kind != "function_call":
            return []
        state.tool_index = self._tools
        self._tools += 1
        call_id = (
            text_or_none(item.get("call_id")) or text_or_none(item.get("id")) or new_id("call")
        )
        events: list[Event] = [
            ToolCallStarted(state.tool_index, call_id, str(item.get("name", "")))
        ]
        return events + self._arguments(state, item.get("arguments"))

    def _item_done(self, payload: JSON) -> list[Event]:
        index, item = _index(payload), _object(payload.get("item"))
        events = [] if index in self._items else self._open(index, item)
        state = self._items[index]
        if state.kind == "function_call" and not state.arguments_seen:
            events += self._arguments(state, item.get("arguments"))
        elif state.kind == "message" and not state.text_seen:
            state.text_seen = True
            text = "".join(_texts_of(item))
            events += [TextDelta(text)] if text else []
        elif state.kind == "reasoning":
            reasoning = reasoning_of(item)
            if reasoning.text and not state.text_seen:
                events.append(ReasoningDelta(reasoning.text))
            carried = reasoning.encrypted or reasoning.signature or reasoning.redacted
            if state.text_seen or reasoning.text or carried:
                events.append(
                    ReasoningDone(
                        signature=reasoning.signature,
                        encrypted=reasoning.encrypted,
                        item_id=reasoning.item_id,
                        redacted=reasoning.redacted,
                    )
                )
        return events

    # Content ----------------------------------------------------------------

    def _text(self, payload: JSON) -> list[Event]:
        state = self._items.get(_index(payload))
        if state is not None:
            state.text_seen = True
        if payload.get("type") == "response.refusal.delta":
            self._refused = True
        delta = payload.get("delta")
        return [TextDelta(delta)] if isinstance(delta, str) and delta else []

    def _text_done(self, payload: JSON) -> list[Event]:
        state = self._items.get(_index(payload))
        text = payload.get("text", payload.get("refusal"))
        if state is None or state.text_seen or not isinstance(text, str) or not text:
            return []
        state.text_seen = True
        return [TextDelta(text)]

    def _summary_part(self, payload: JSON) -> list[Event]:
        """A second summary part is set apart from the first by a blank line."""
        state = self._items.get(_index(payload))
        if state is None or not state.text_seen:
            return []
        return [ReasoningDelta("\n\n")]

    def _reasoning(self, payload: JSON) -> list[Event]:
        state = self._items.get(_index(payload))
        delta = payload.get("delta")
        if not isinstance(delta, str) or not delta:
            return []
        if state is not None:
            state.text_seen = True
        return [ReasoningDelta(delta)]

    def _call_arguments(self, payload: JSON) -> list[Event]:
        state = self._items.get(_index(payload))
        if state is None or state.kind != "function_call":
            raise TranslationError("function call arguments for an output item never added")
        if payload.get("type") == "response.function_call_arguments.done":
            return [] if state.arguments_seen else self._arguments(state, payload.get("arguments"))
        return self._arguments(state, payload.get("delta"))

    def _arguments(self, state: _UpstreamItem, text: object) -> list[Event]:
        if not isinstance(text, str) or not text or state.tool_index is None:
            return []
        state.arguments_seen = True
        return [ToolArguments(state.tool_index, text)]


_Handler = Callable[[ResponsesStreamDecoder, JSON], list[Event]]

_HANDLERS: dict[str, _Handler] = {
    "response.created": ResponsesStreamDecoder._created,
    "response.in_progress": ResponsesStreamDecoder._created,
    "response.output_item.added": ResponsesStreamDecoder._added,
    "response.output_item.done": ResponsesStreamDecoder._item_done,
    "response.output_text.delta": ResponsesStreamDecoder._text,
    "response.refusal.delta": ResponsesStreamDecoder._text,
    "response.output_text.done": ResponsesStreamDecoder._text_done,
    "response.refusal.done": ResponsesStreamDecoder._text_done,
    "response.reasoning_summary_part.added": ResponsesStreamDecoder._summary_part,
    "response.reasoning_summary_text.delta": ResponsesStreamDecoder._reasoning,
    "response.reasoning_text.delta": ResponsesStreamDecoder._reasoning,
    "response.function_call_arguments.delta": ResponsesStreamDecoder._call_arguments,
    "response.function_call_arguments.done": ResponsesStreamDecoder._call_arguments,
    "response.completed": ResponsesStreamDecoder._completed,
    "response.incomplete": ResponsesStreamDecoder._completed,
    "response.failed": ResponsesStreamDecoder._failed,
    "error": ResponsesStreamDecoder._failed,
}


def _object(value: object) -> JSON:
    return value if isinstance(value, dict) else {}


def _index(payload: JSON) -> int:
    index = payload.get("output_index")
    if not isinstance(index, int) or isinstance(index, bool):
        raise TranslationError(f"a {payload.get('type')} event without an output_index")
    return index


def _started(payload: JSON) -> Started:
    response = _object(payload.get("response"))
    return Started(
        id=text_or_none(response.get("id")) or new_id("resp"),
        model=str(response.get("model") or ""),
    )


def _texts_of(item: JSON) -> list[str]:
    content = item.get("content")
    return [
        str(part.get("text", part.get("refusal", "")))
        for part in (content if isinstance(content, list) else [])
        if isinstance(part, dict) and part.get("type") in ("output_text", "refusal")
    ]


# Encoding ------------------------------------------------------------------------


@dataclass
class _ClientItem:
    """One output item the encoder has added and not yet done."""

    index: int
    item_id: str
    texts: list[str] = field(default_factory=list)
    call_id: str = ""
    name: str = ""


class ResponsesStreamEncoder:
    """
    Neutral events to a client's Responses stream.  Each frame is
    C{event: <type>} and C{data:} with that C{type} and an increasing
    C{sequence_number}; every item added is done, with the same id, before
    the one terminal event, whose response lists the whole output.  Text
    and reasoning items close when something else begins; tool calls stay
    open (parallel calls interleave by C{output_index}) until the end.
    """

    def __init__(self, model: str) -> None:
        self._model = model
        self._sequence = 0
        self._id = ""
        self._created_at = int(time.time())
        self._started = False
        self._ended = False
        self._done: dict[int, JSON] = {}
        self._next_index = 0
        self._message: _ClientItem | None = None
        self._reasoning: _ClientItem | None = None
        self._calls: dict[int, _ClientItem] = {}

    def feed(self, events: Iterable[Event]) -> bytes:
        out: list[bytes] = []
        for event in events:
            if self._ended:
                break
            if not self._started:
                out.append(self._start(event if isinstance(event, Started) else None))
                if isinstance(event, Started):
                    continue
            out.append(self._encode(event))
        return b"".join(out)

    def _encode(self, event: Event) -> bytes:
        if isinstance(event, TextDelta):
            return self._text(event.text)
        if isinstance(event, ReasoningDelta):
            return self._reasoning_delta(event.text)
        if isinstance(event, ReasoningDone):
            return self._reasoning_done(event)
        if isinstance(event, ToolCallStarted):
            return self._call(event)
        if isinstance(event, ToolArguments):
            return self._call_arguments(event)
        if isinstance(event, Finished):
            return self._finish(event)
        if isinstance(event, Failed):
            return self._fail(event.message)
        return b""  # a second Started

    def _emit(self, kind: str, **fields: object) -> bytes:
        payload = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return encode(kind, payload)

    def _response(self, output: list[JSON], stop: Stop | None, finished: Finished | None) -> JSON:
        usage = finished.usage if finished is not None else None
        return response_json(self._id, self._created_at, self._model, output, stop, usage)

    def _start(self, started: Started | None) -> bytes:
        self._started = True
        self._id = started.id if started is not None and started.id else new_id("resp")
        response = self._response([], None, None)
        return self._emit("response.created", response=response) + self._emit(
            "response.in_progress", response=response
        )

    def _open(self, item: JSON, item_id: str) -> tuple[_ClientItem, bytes]:
        opened = _ClientItem(self._next_index, item_id)
        self._next_index += 1
        return opened, self._emit(
            "response.output_item.added", output_index=opened.index, item=item
        )

    def _close(self, opened: _ClientItem, item: JSON) -> bytes:
        self._done[opened.index] = item
        return self._emit("response.output_item.done", output_index=opened.index, item=item)

    # Text ---------------------------------------------------------------

    def _text(self, text: str) -> bytes:
        if not text:
            return b""
        out = self._close_reasoning(None)
        if self._message is None:
            item_id = new_id("msg")
            self._message, added = self._open(message_item(item_id, [], "in_progress"), item_id)
            out += added + self._emit(
                "response.content_part.added", **self._where(self._message), part=output_text("")
            )
        self._message.texts.append(text)
        return out + self._emit(
            "response.output_text.delta", **self._where(self._message), delta=text, logprobs=[]
        )

    def _where(self, opened: _ClientItem) -> JSON:
        return {"item_id": opened.item_id, "output_index": opened.index, "content_index": 0}

    def _close_message(self) -> bytes:
        message, self._message = self._message, None
        if message is None:
            return b""
        text = "".join(message.texts)
        where = self._where(message)
        return (
            self._emit("response.output_text.done", **where, text=text, logprobs=[])
            + self._emit("response.content_part.done", **where, part=output_text(text))
            + self._close(message, message_item(message.item_id, [text]))
        )

    # Reasoning ------------------------------------------------------------

    def _open_reasoning(self, item_id: str | None) -> bytes:
        if self._reasoning is not None:
            return b""
        out = self._close_message()
        item_id = item_id or new_id("rs")
        self._reasoning, added = self._open(reasoning_item(item_id, "", None), item_id)
        return out + added

    def _summary_where(self, opened: _ClientItem) -> JSON:
        return {"item_id": opened.item_id, "output_index": opened.index, "summary_index": 0}

    def _reasoning_delta(self, text: str) -> bytes:
        if not text:
            return b""
        out = self._open_reasoning(None)
        assert self._reasoning is not None
        where = self._summary_where(self._reasoning)
        if not self._reasoning.texts:
            part = {"type": "summary_text", "text": ""}
            out += self._emit("response.reasoning_summary_part.added", **where, part=part)
        self._reasoning.texts.append(text)
        return out + self._emit("response.reasoning_summary_text.delta", **where, delta=text)

    def _reasoning_done(self, done: ReasoningDone) -> bytes:
        encrypted, item_id = client_carrier(done)
        return self._open_reasoning(item_id) + self._close_reasoning(encrypted, item_id)

    def _close_reasoning(self, encrypted: str | None, real_id: str | None = None) -> bytes:
        reasoning, self._reasoning = self._reasoning, None
        if reasoning is None:
            return b""
        out = b""
        text = "".join(reasoning.texts)
        if reasoning.texts:
            where = self._summary_where(reasoning)
            part = {"type": "summary_text", "text": text}
            out += self._emit("response.reasoning_summary_text.done", **where, text=text)
            out += self._emit("response.reasoning_summary_part.done", **where, part=part)
        if encrypted is not None and real_id and real_id != reasoning.item_id:
            # The client saw this item under an id made before the real one came.
            encrypted = f"{encrypted}@{real_id}"
        return out + self._close(reasoning, reasoning_item(reasoning.item_id, text, encrypted))

    # Tool calls -------------------------------------------------------------

    def _call(self, started: ToolCallStarted) -> bytes:
        if started.index in self._calls:
            return b""
        out = self._close_message() + self._close_reasoning(None)
        item_id = new_id("fc")
        item = function_call_item(item_id, started.id, started.name, "", "in_progress")
        call, added = self._open(item, item_id)
        call.call_id, call.name = started.id, started.name
        self._calls[started.index] = call
        return out + added

    def _call_arguments(self, arguments: ToolArguments) -> bytes:
        call = self._calls.get(arguments.index)
        if call is None or not arguments.delta:
            return b""
        call.texts.append(arguments.delta)
        return self._emit(
            "response.function_call_arguments.delta",
            item_id=call.item_id,
            output_index=call.index,
            delta=arguments.delta,
        )

    def _close_calls(self) -> bytes:
        out = b""
        for call in sorted(self._calls.values(), key=lambda c: c.index):
            arguments = "".join(call.texts)
            out += self._emit(
                "response.function_call_arguments.done",
                item_id=call.item_id,
                output_index=call.index,
                name=call.name,
                arguments=arguments,
            )
            item = function_call_item(call.item_id, call.call_id, call.name, arguments)
            out += self._close(call, item)
        self._calls.clear()
        return out

    # The end -----------------------------------------------------------------

    def _output(self) -> list[JSON]:
        return [self._done[i] for i in sorted(self._done)]

    def _finish(self, finished: Finished) -> bytes:
        out = self._close_message() + self._close_reasoning(None) + self._close_calls()
        self._ended = True
        response = self._response(self._output(), finished.stop, finished)
        kind = (
            "response.incomplete" if response["status"] == "incomplete" else "response.completed"
        )
        extra: JSON = {}
        if finished.usage is not None and finished.usage.copilot_usage is not None:
            extra["copilot_usage"] = finished.usage.copilot_usage
        return out + self._emit(kind, response=response, **extra)

    def _fail(self, message: str) -> bytes:
        self._ended = True
        response = self._response(self._output(), None, None)
        response["status"] = "failed"
        response["error"] = {"code": "server_error", "message": message}
        return self._emit("response.failed", response=response)
