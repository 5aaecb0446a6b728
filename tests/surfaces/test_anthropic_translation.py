"""
The Anthropic translation, the SSE splitter and the model mapping, without a
reactor: recorded-shape fixtures and Hypothesis properties.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from copilot_proxy.surfaces import (
    MessagesStream,
    StreamTranslator,
    TranslationError,
    chat_request,
    estimate_tokens,
    message_response,
    parse_model_map,
    resolve_model,
    wants_thinking,
)
from copilot_proxy.wire import Event, SSESplitter, anthropic_error


def _chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> Any:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": choices, **extra}


def _tool(index: int, args: str, call_id: str | None = None, name: str | None = None) -> Any:
    call: dict[str, Any] = {"index": index, "function": {"arguments": args}}
    if call_id is not None:
        call["id"] = call_id
        call["type"] = "function"
        call["function"]["name"] = name
    return call


def _run(chunks: list[Any], model: str = "claude-sonnet-4-20250514") -> list[dict[str, Any]]:
    translator = StreamTranslator(model)
    events: list[dict[str, Any]] = []
    for chunk in chunks:
        events += translator.feed(chunk)
    events += translator.finish()
    return events


def _types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


# Requests ----------------------------------------------------------------


def test_request_translation_keeps_what_chat_completions_can_carry() -> None:
    body = {
        "model": "claude-sonnet-4-20250514",
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
        "max_tokens": 100,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 5,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u1"},
        "stream": True,
        "tools": [
            {"name": "add", "description": "adds", "input_schema": {"type": "object"}},
            {"type": "web_search_20250305", "name": "web_search"},
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image, and 2+2?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "AAA"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "x"},
                    {"type": "text", "text": "Let me add."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "add",
                        "input": {"a": 2, "b": 2},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "4"}],
                    },
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
    }
    request = chat_request(body, "claude-sonnet-4")
    assert request["model"] == "claude-sonnet-4"
    assert request["max_tokens"] == 100
    assert request["temperature"] == 0.5
    assert request["top_p"] == 0.9
    assert request["stop"] == ["END"]
    assert request["stream"] is True
    assert request["stream_options"] == {"include_usage": True}
    assert "metadata" not in request and "top_k" not in request
    assert request["tools"] == [
        {
            "type": "function",
            "function": {"name": "add", "description": "adds", "parameters": {"type": "object"}},
        }
    ]
    assert request["tool_choice"] == "required"
    assert request["parallel_tool_calls"] is False
    assert request["messages"] == [
        {"role": "system", "content": "Be brief.\n\nBe kind."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this image, and 2+2?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Let me add.",
            # A signed thinking block goes back as Copilot's reasoning fields.
            "reasoning_text": "hmm",
            "reasoning_opaque": "x",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 2, "b": 2}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "4"},
        {"role": "user", "content": "Thanks"},
    ]


@pytest.mark.parametrize(
    ("model", "field"),
    [
        ("gpt-5", "max_completion_tokens"),
        ("gpt-5.1-codex", "max_completion_tokens"),
        ("o3-mini", "max_completion_tokens"),
        ("gpt-4o", "max_tokens"),
        ("claude-sonnet-4", "max_tokens"),
    ],
)
def test_max_tokens_goes_where_the_model_wants_it(model: str, field: str) -> None:
    request = chat_request({"messages": [], "max_tokens": 7}, model)
    assert request[field] == 7
    assert len([k for k in request if k.startswith("max_")]) == 1


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "add"}, {"type": "function", "function": {"name": "add"}}),
    ],
)
def test_tool_choice_maps(choice: Any, expected: Any) -> None:
    body = {"messages": [], "tools": [{"name": "add", "input_schema": {}}], "tool_choice": choice}
    assert chat_request(body, "m")["tool_choice"] == expected


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"messages": "hi"},
        {"messages": [{"role": "tool", "content": "x"}]},
        {"messages": [3]},
    ],
)
def test_malformed_requests_are_refused(body: Any) -> None:
    with pytest.raises(TranslationError):
        chat_request(body, "m")


def test_error_body_has_anthropic_shape() -> None:
    assert json.loads(anthropic_error(429, "slow down")) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }
    assert json.loads(anthropic_error(502, "x"))["error"]["type"] == "api_error"


def test_token_estimate_grows_with_the_prompt() -> None:
    small = estimate_tokens({"messages": [{"role": "user", "content": "hi"}]})
    big = estimate_tokens({"messages": [{"role": "user", "content": "hi " * 400}]})
    image = estimate_tokens(
        {
            "messages": [
                {"role": "user", "content": [{"type": "image", "source": {"data": "A" * 9000}}]}
            ]
        }
    )
    assert 1 <= small < big
    assert big == 300 + 4
    assert image == 1600 + 4


# Whole answers -------------------------------------------------------------


def test_completion_with_text_and_tool_calls_becomes_one_message() -> None:
    completion = {
        "id": "chatcmpl-9",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Adding."},
                "finish_reason": "stop",
            },
            {
                "index": 1,
                "message": {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "add", "arguments": '{"a":1}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            },
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 3,
            "prompt_tokens_details": {"cached_tokens": 4},
        },
    }
    message = message_response(completion, "claude-sonnet-4-20250514")
    assert message["id"] == "msg_9"
    assert message["model"] == "claude-sonnet-4-20250514"
    assert message["content"] == [
        {"type": "text", "text": "Adding."},
        {"type": "tool_use", "id": "call_1", "name": "add", "input": {"a": 1}},
    ]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {
        "input_tokens": 6,
        "output_tokens": 3,
        "cache_read_input_tokens": 4,
    }


@pytest.mark.parametrize(("finish", "stop"), [("stop", "end_turn"), ("length", "max_tokens")])
def test_finish_reasons_map(finish: str, stop: str) -> None:
    completion = {"choices": [{"message": {"content": "x"}, "finish_reason": finish}]}
    assert message_response(completion, "m")["stop_reason"] == stop
    events = _run([_chunk({"content": "x"}, finish)])
    assert events[-2]["delta"]["stop_reason"] == stop


# Streams -------------------------------------------------------------------


def test_text_stream_becomes_the_anthropic_event_sequence() -> None:
    events = _run(
        [
            _chunk({"role": "assistant", "content": ""}),
            _chunk({"content": "Hel"}),
            _chunk({}),  # an empty delta
            _chunk({"content": "lo"}),
            _chunk({}, "stop"),
            _chunk(None, usage={"prompt_tokens": 7, "completion_tokens": 2}),  # usage-only
        ]
    )
    assert _types(events) == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0]["message"]["model"] == "claude-sonnet-4-20250514"
    assert events[1]["content_block"] == {"type": "text", "text": ""}
    assert [e["delta"]["text"] for e in events[2:4]] == ["Hel", "lo"]
    assert events[5]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[5]["usage"] == {"input_tokens": 7, "output_tokens": 2}


def test_multiple_tool_calls_after_text() -> None:
    events = _run(
        [
            _chunk({"content": "Let me check."}),
            _chunk(
                {"tool_calls": [_tool(0, "", "call_a", "weather"), _tool(1, "", "call_b", "time")]}
            ),
            _chunk({"tool_calls": [_tool(0, '{"city":')]}),
            _chunk({"tool_calls": [_tool(1, '{"tz":"UTC"}')]}),
            _chunk({"tool_calls": [_tool(0, '"Paris"}')]}),
            _chunk({}, "tool_calls"),
        ]
    )
    starts = [e for e in events if e["type"] == "content_block_start"]
    assert [s["content_block"]["type"] for s in starts] == ["text", "tool_use", "tool_use"]
    assert [s["content_block"].get("id") for s in starts[1:]] == ["call_a", "call_b"]
    assert [s["content_block"].get("name") for s in starts[1:]] == ["weather", "time"]
    args: dict[int, str] = {}
    for e in events:
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta":
            args[e["index"]] = args.get(e["index"], "") + e["delta"]["partial_json"]
    assert json.loads(args[1]) == {"city": "Paris"}
    assert json.loads(args[2]) == {"tz": "UTC"}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_claude_tool_index_starting_at_one() -> None:
    events = _run(
        [
            _chunk({"tool_calls": [_tool(1, "", "toolu_1", "add")]}),
            _chunk({"tool_calls": [_tool(1, '{"a":1}')]}),
            _chunk({}, "tool_calls"),
        ]
    )
    assert _types(events) == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[1]["index"] == 0


def test_upstream_error_mid_stream_ends_with_an_error_event() -> None:
    stream = MessagesStream("m")
    out = stream.feed(b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n')
    out += stream.feed(b'data: {"error":{"message":"quota exceeded","code":"x"}}\n\n')
    out += stream.end()
    names = [line[7:] for line in out.decode().splitlines() if line.startswith("event: ")]
    assert names == ["message_start", "content_block_start", "content_block_delta", "error"]
    assert b"quota exceeded" in out


def test_stream_without_done_still_ends_the_message() -> None:
    stream = MessagesStream("m")
    chunk = b'data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}'
    out = stream.feed(chunk)
    assert out.count(b"event: ") == 0  # the event is not complete yet
    out += stream.end()
    assert out.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')


def test_stream_ending_without_a_finish_reason_ends_with_an_error() -> None:
    stream = MessagesStream("m")
    out = stream.feed(b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n')
    out += stream.end()
    names = [line[7:] for line in out.decode().splitlines() if line.startswith("event: ")]
    assert names == ["message_start", "content_block_start", "content_block_delta", "error"]


def test_empty_stream_is_still_a_message() -> None:
    assert _types(_run([])) == ["message_start", "message_delta", "message_stop"]


def _check_well_formed(events: list[dict[str, Any]]) -> tuple[str, dict[int, str]]:
    """Assert the Anthropic stream grammar; return the text and each tool's arguments."""
    assert events[0]["type"] == "message_start"
    assert [e["type"] for e in events[-2:]] == ["message_delta", "message_stop"]
    open_block: int | None = None
    seen: list[int] = []
    kinds: dict[int, str] = {}
    text = ""
    tools: dict[int, str] = {}
    for e in events[1:-2]:
        if e["type"] == "content_block_start":
            assert open_block is None, "a block started before the previous one stopped"
            assert e["index"] == len(seen), "block indexes count up from 0"
            open_block = e["index"]
            seen.append(e["index"])
            kinds[e["index"]] = e["content_block"]["type"]
            if kinds[e["index"]] == "tool_use":
                tools[e["index"]] = ""
        elif e["type"] == "content_block_delta":
            assert e["index"] == open_block, "a delta outside its open block"
            if e["delta"]["type"] == "text_delta":
                assert kinds[e["index"]] == "text"
                text += e["delta"]["text"]
            else:
                assert kinds[e["index"]] == "tool_use"
                tools[e["index"]] += e["delta"]["partial_json"]
        elif e["type"] == "content_block_stop":
            assert e["index"] == open_block
            open_block = None
        else:
            raise AssertionError(f"unexpected event {e['type']}")
    assert open_block is None
    return text, tools


# A "valid sequence": text pieces and tool calls in any order, each tool
# call's arguments contiguous (as OpenAI-style streams send them), with empty
# deltas sprinkled in, an optional finish chunk and usage-only final chunk.
_text = st.text(max_size=8)
_segment = st.one_of(
    st.tuples(st.just("text"), _text),
    st.tuples(st.just("empty"), st.just("")),
    st.tuples(st.just("tool"), st.lists(_text, max_size=4)),
)


@st.composite
def _streams(draw: Any) -> tuple[list[Any], str, list[str]]:
    segments = draw(st.lists(_segment, max_size=12))
    first_index = draw(st.sampled_from([0, 1]))
    chunks: list[Any] = []
    if draw(st.booleans()):
        chunks.append(_chunk({"role": "assistant", "content": ""}))
    text = ""
    arguments: list[str] = []
    for kind, value in segments:
        if kind == "text":
            chunks.append(_chunk({"content": value}))
            text += value
        elif kind == "empty":
            chunks.append(_chunk({}))
        else:
            index = first_index + len(arguments)
            pieces = list(value)
            chunks.append(
                _chunk(
                    {
                        "tool_calls": [
                            _tool(index, pieces[0] if pieces else "", f"call_{index}", "f")
                        ]
                    }
                )
            )
            chunks += [_chunk({"tool_calls": [_tool(index, p)]}) for p in pieces[1:]]
            arguments.append("".join(pieces))
    if draw(st.booleans()):
        chunks.append(_chunk({}, draw(st.sampled_from(["stop", "length", "tool_calls"]))))
    if draw(st.booleans()):
        chunks.append(_chunk(None, usage={"prompt_tokens": 3, "completion_tokens": 5}))
    return chunks, text, arguments


@settings(max_examples=300, deadline=None)
@given(_streams())
def test_any_chunk_sequence_gives_a_well_formed_stream_with_the_same_content(
    stream: tuple[list[Any], str, list[str]],
) -> None:
    chunks, text, arguments = stream
    events = _run(chunks)
    got_text, got_tools = _check_well_formed(events)
    assert got_text == text
    assert [got_tools[i] for i in sorted(got_tools)] == arguments
    assert all(
        e["content_block"]["id"]
        for e in events
        if e["type"] == "content_block_start" and e["content_block"]["type"] == "tool_use"
    )


@settings(max_examples=200, deadline=None)
@given(_streams(), st.lists(st.integers(min_value=1, max_value=40), max_size=30), st.booleans())
def test_event_stream_split_anywhere_translates_the_same(
    stream: tuple[list[Any], str, list[str]], cuts: list[int], crlf: bool
) -> None:
    chunks = stream[0]
    end = "\r\n" if crlf else "\n"
    wire = "".join(f"data: {json.dumps(c, ensure_ascii=False)}{end}{end}" for c in chunks)
    wire += f": a comment{end}data: [DONE]{end}{end}"
    data = wire.encode()
    whole = MessagesStream("m")
    expected = whole.feed(data) + whole.end()
    pieces = MessagesStream("m")
    out = b""
    at = 0
    for cut in cuts:
        out += pieces.feed(data[at : at + cut])
        at += cut
    out += pieces.feed(data[at:]) + pieces.end()
    assert _strip_ids(out) == _strip_ids(expected)


def _strip_ids(out: bytes) -> list[Any]:
    events = []
    for line in out.decode().split("\n"):
        if line.startswith("data: "):
            event = json.loads(line[6:])
            if event["type"] == "content_block_start":
                event["content_block"].pop("id", None)
            if event["type"] == "message_start":
                event["message"].pop("id", None)
            events.append(event)
    return events


def test_sse_splitter_handles_multiline_data_names_and_cr() -> None:
    splitter = SSESplitter()
    events = splitter.feed(b"event: ping\rdata: a\r\ndata: b\r\n\r\n: c\n\ndata:x")
    assert events == [Event("ping", "a\nb")]
    assert splitter.feed(b"\r") == []
    assert splitter.feed(b"\n\n") == [Event("", "x")]
    assert splitter.close() == []


# Model names ---------------------------------------------------------------

KNOWN = ["gpt-4o", "claude-sonnet-4", "claude-sonnet-4.5", "claude-opus-4", "claude-3.5-sonnet"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4.5"),
        ("claude-sonnet-4-5", "claude-sonnet-4.5"),
        ("claude-opus-4-1-20250805", "claude-opus-4"),
        ("claude-3-5-sonnet-latest", "claude-3.5-sonnet"),
        ("gpt-4o", "gpt-4o"),
        ("claude-haiku-3", None),
        ("claude-sonnet", None),
    ],
)
def test_model_names_map_to_listed_ids(name: str, expected: str | None) -> None:
    assert resolve_model(name, KNOWN, {}) == expected


def test_model_map_wins() -> None:
    assert resolve_model("claude-haiku-3", KNOWN, {"claude-haiku-3": "gpt-4o"}) == "gpt-4o"
    assert parse_model_map(" a = b ") == ("a", "b")
    with pytest.raises(ValueError, match="from=to"):
        parse_model_map("nothing")


def test_thinking_is_wanted_unless_absent_or_disabled() -> None:
    assert wants_thinking({"thinking": {"type": "enabled", "budget_tokens": 1024}})
    assert wants_thinking({"thinking": {"type": "adaptive"}})
    assert not wants_thinking({"thinking": {"type": "disabled"}})
    assert not wants_thinking({"model": "claude-sonnet-4"})
    assert not wants_thinking({"thinking": True})
    assert not wants_thinking([])


def test_translated_request_carries_no_thinking() -> None:
    body = {
        "model": "claude-sonnet-4",
        "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": "hi"}],
    }
    sent = chat_request(body, "claude-sonnet-4")
    assert "thinking" not in json.dumps(sent)
    assert sent["max_tokens"] == 2048
