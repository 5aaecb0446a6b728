"""
Hypothesis properties of the Chat Completions and Messages stream codecs:
any valid upstream event sequence, split at any byte, fed through the SSE
splitter, the upstream's decoder and the client's encoder, gives a
well-formed client stream with the same text, thinking, signatures, tool
names and arguments; one cut before its end gives an error ending, never a
clean one.
"""

from __future__ import annotations

import itertools
import json
import string
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from copilot_proxy.translate import ChatCodec, MessagesCodec, StreamTranslation

from ._clients import Seen, anthropic_events, anthropic_message, check_anthropic, check_chat, split

JSON = dict[str, Any]

CHAT = ChatCodec()
MESSAGES = MessagesCodec()
_FINISHES = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length"}


@dataclass
class Upstream:
    """A generated upstream stream and what a client must see of it."""

    events: list[tuple[str | None, JSON | str]] = field(default_factory=list)
    text: str = ""
    thinking: str = ""
    signatures: list[str] = field(default_factory=list)
    tools: list[tuple[str, str]] = field(default_factory=list)
    stop: str = "end_turn"
    terminal: int = 0  # the index of the event a clean end needs

    def wire(self, crlf: bool) -> tuple[bytes, int]:
        """The SSE bytes, and the offset where the terminal event starts."""
        end = "\r\n" if crlf else "\n"
        out = ""
        offset = 0
        for i, (name, data) in enumerate(self.events):
            if i == self.terminal:
                offset = len(out.encode())
            text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
            head = f"event: {name}{end}" if name else ""
            out += f"{head}data: {text}{end}{end}"
            if i % 3 == 1:
                out += f": a comment{end}"
        return out.encode(), offset


_pieces = st.lists(st.text(max_size=6), max_size=4)
_names = st.sampled_from(["f", "get_weather", "run_command"])
_arguments = st.dictionaries(
    st.text(string.ascii_letters, min_size=1, max_size=5),
    st.one_of(st.integers(), st.text(string.ascii_letters + " ", max_size=8)),
    max_size=3,
).map(lambda value: json.dumps(value))
_signatures = st.text(string.ascii_letters + string.digits + "+/=", min_size=1, max_size=12)


@st.composite
def _cut_text(draw: Any, text: str) -> list[str]:
    """C{text} in pieces cut at any points."""
    points = sorted(draw(st.lists(st.integers(0, len(text)), max_size=3)))
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


_segment = st.one_of(
    st.tuples(st.just("text"), _pieces),
    st.tuples(st.just("thinking"), _pieces, st.one_of(st.none(), _signatures)),
    st.tuples(st.just("tool"), _names, _arguments),
    st.tuples(st.just("empty")),
)


# Chat Completions upstreams ----------------------------------------------------


def _chunk(delta: JSON | None, finish: str | None = None, **extra: Any) -> JSON:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-p", "object": "chat.completion.chunk", "choices": choices, **extra}


@st.composite
def chat_upstreams(draw: Any) -> Upstream:
    """Copilot chunk streams: text, Claude thinking and signatures, calls from index 0 or 1."""
    up = Upstream()
    chunks: list[JSON] = []
    if draw(st.booleans()):
        chunks.append(_chunk({"role": "assistant", "content": ""}))
    first_index = draw(st.sampled_from([0, 1]))
    for segment in draw(st.lists(_segment, max_size=8)):
        if segment[0] == "text":
            chunks += [_chunk({"content": p}) for p in segment[1]]
            up.text += "".join(segment[1])
        elif segment[0] == "thinking":
            chunks += [_chunk({"reasoning_text": p}) for p in segment[1] if p]
            up.thinking += "".join(segment[1])
            if segment[2] is not None:
                chunks.append(_chunk({"content": "", "reasoning_opaque": segment[2]}))
                up.signatures.append(segment[2])
        elif segment[0] == "tool":
            index = first_index + len(up.tools)
            pieces = draw(_cut_text(segment[2]))
            start = {"index": index, "id": f"call_{index}", "type": "function"}
            start["function"] = {"name": segment[1], "arguments": pieces[0]}
            chunks.append(_chunk({"tool_calls": [start]}))
            chunks += [
                _chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]})
                for p in pieces[1:]
            ]
            up.tools.append((segment[1], segment[2]))
        else:
            chunks.append(_chunk({}))
    up.stop = "tool_use" if up.tools else draw(st.sampled_from(["end_turn", "max_tokens"]))
    up.terminal = len(chunks)
    chunks.append(_chunk({}, _FINISHES[up.stop]))
    if draw(st.booleans()):
        chunks.append(_chunk(None, usage={"prompt_tokens": 3, "completion_tokens": 5}))
    up.events = [(None, c) for c in chunks]
    if draw(st.booleans()):
        up.events.append((None, "[DONE]"))
    return up


# Anthropic native upstreams --------------------------------------------------------


def _block(index: int, segment: Any, up: Upstream, draw: Any) -> list[JSON]:
    """The events of one native content block."""
    kind = segment[0]
    if kind == "text":
        block: JSON = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in segment[1]]
        up.text += "".join(segment[1])
    elif kind == "thinking":
        block = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": p} for p in segment[1]]
        up.thinking += "".join(segment[1])
        if segment[2] is not None:
            deltas += [
                {"type": "signature_delta", "signature": p}
                for p in draw(_cut_text(segment[2]))
                if p
            ]
            up.signatures.append(segment[2])
    else:
        block = {"type": "tool_use", "id": f"toolu_{index}", "name": segment[1], "input": {}}
        deltas = [
            {"type": "input_json_delta", "partial_json": p} for p in draw(_cut_text(segment[2]))
        ]
        up.tools.append((segment[1], segment[2]))
    events = [{"type": "content_block_start", "index": index, "content_block": block}]
    for delta in deltas:
        events.append({"type": "content_block_delta", "index": index, "delta": delta})
        if draw(st.integers(0, 4)) == 0:
            events.append({"type": "ping"})
    return [*events, {"type": "content_block_stop", "index": index}]


@st.composite
def native_upstreams(draw: Any) -> Upstream:
    """Native C{/v1/messages} event streams: thinking, text and tool blocks, pings anywhere."""
    up = Upstream()
    message: JSON = {
        "id": "msg_p",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4.5",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 7, "output_tokens": 1},
    }
    events: list[JSON] = [{"type": "message_start", "message": message}]
    segments = [s for s in draw(st.lists(_segment, max_size=8)) if s[0] != "empty"]
    for index, segment in enumerate(segments):
        events += _block(index, segment, up, draw)
    up.stop = "tool_use" if up.tools else draw(st.sampled_from(["end_turn", "max_tokens"]))
    delta = {"stop_reason": up.stop, "stop_sequence": None}
    events.append({"type": "message_delta", "delta": delta, "usage": {"output_tokens": 9}})
    up.terminal = len(events)
    events.append({"type": "message_stop"})
    up.events = [(e["type"], e) for e in events]
    return up


# The properties ----------------------------------------------------------------------


def _translate(upstream: Any, client: Any, wire: bytes, cuts: list[int]) -> bytes:
    stream = StreamTranslation(upstream, client, "client-model")
    out = b"".join(stream.feed(piece) for piece in split(wire, cuts))
    return out + stream.end()


def _assert_same(seen: Seen, up: Upstream) -> None:
    assert seen.error is None
    assert seen.text == up.text
    assert seen.thinking == up.thinking
    assert seen.signatures == up.signatures
    assert seen.tools == up.tools


_cuts = st.lists(st.integers(min_value=1, max_value=40), max_size=30)


@settings(max_examples=200)
@given(chat_upstreams(), _cuts, st.booleans())
def test_a_chat_stream_split_anywhere_reaches_a_messages_client_whole(
    up: Upstream, cuts: list[int], crlf: bool
) -> None:
    events = anthropic_events(_translate(CHAT, MESSAGES, up.wire(crlf)[0], cuts))
    seen = check_anthropic(events)
    _assert_same(seen, up)
    assert seen.stop == up.stop
    message = anthropic_message(events)
    assert [(b.name, b.input) for b in message.content if b.type == "tool_use"] == [
        (name, json.loads(arguments)) for name, arguments in up.tools
    ]


@settings(max_examples=200)
@given(chat_upstreams(), _cuts, st.booleans())
def test_a_chat_stream_split_anywhere_reaches_a_chat_client_whole(
    up: Upstream, cuts: list[int], crlf: bool
) -> None:
    seen = check_chat(_translate(CHAT, CHAT, up.wire(crlf)[0], cuts))
    _assert_same(seen, up)
    assert seen.stop == _FINISHES[up.stop]


@settings(max_examples=200)
@given(native_upstreams(), _cuts, st.booleans())
def test_a_native_stream_split_anywhere_reaches_a_messages_client_whole(
    up: Upstream, cuts: list[int], crlf: bool
) -> None:
    events = anthropic_events(_translate(MESSAGES, MESSAGES, up.wire(crlf)[0], cuts))
    seen = check_anthropic(events)
    _assert_same(seen, up)
    assert seen.stop == up.stop
    anthropic_message(events)


@settings(max_examples=200)
@given(native_upstreams(), _cuts, st.booleans())
def test_a_native_stream_split_anywhere_reaches_a_chat_client_whole(
    up: Upstream, cuts: list[int], crlf: bool
) -> None:
    seen = check_chat(_translate(MESSAGES, CHAT, up.wire(crlf)[0], cuts))
    _assert_same(seen, up)
    assert seen.stop == _FINISHES[up.stop]


@settings(max_examples=150)
@given(st.one_of(chat_upstreams(), native_upstreams()), _cuts, st.data())
def test_a_stream_cut_before_its_end_ends_with_an_error_for_every_client(
    up: Upstream, cuts: list[int], data: st.DataObject
) -> None:
    wire, terminal = up.wire(False)
    cut = data.draw(st.integers(0, terminal), label="cut")
    upstream = MESSAGES if up.events[0][0] == "message_start" else CHAT
    to_messages = check_anthropic(
        anthropic_events(_translate(upstream, MESSAGES, wire[:cut], cuts))
    )
    to_chat = check_chat(_translate(upstream, CHAT, wire[:cut], cuts))
    assert to_messages.error is not None and to_messages.stop is None
    assert to_chat.error is not None and to_chat.stop is None
