"""
The Anthropic Messages codec without a reactor: requests both ways (the
native endpoint's thinking rules included), whole answers both ways, the
native event stream in and a client's event stream out, read back by the
real C{anthropic} SDK's types and stream accumulator.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from copilot_proxy.translate import (
    Answer,
    Capabilities,
    ChatCodec,
    Failed,
    Finished,
    Image,
    Message,
    MessagesCodec,
    Reasoning,
    ReasoningDelta,
    ReasoningDone,
    Request,
    Started,
    Stop,
    StreamTranslation,
    Text,
    TextDelta,
    Tool,
    ToolArguments,
    ToolCall,
    ToolCallStarted,
    ToolChoice,
    ToolResult,
    TranslationError,
    Usage,
)

from ._clients import anthropic_events, anthropic_message, check_anthropic, check_chat

JSON = dict[str, Any]

CODEC = MessagesCodec()
SONNET_45 = Capabilities(
    min_thinking_budget=1024, max_thinking_budget=32000, max_output_tokens=32000
)
SONNET_46 = Capabilities(
    reasoning_effort=("low", "medium", "high"),
    min_thinking_budget=1024,
    max_thinking_budget=32000,
    adaptive_thinking=True,
    max_output_tokens=32000,
)


def _request(**fields: Any) -> Request:
    return Request(model="m", messages=fields.pop("messages", []), **fields)


def _event(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields})


def _decode_all(events: list[str], end: bool = True) -> list[Any]:
    decoder = CODEC.stream_decoder()
    out: list[Any] = []
    for data in events:
        out += decoder.feed(json.loads(data)["type"], data)
    return out + (decoder.end() if end else [])


# Requests in ----------------------------------------------------------------------


def test_request_decoding_keeps_what_the_neutral_model_holds() -> None:
    body = {
        "model": "claude-sonnet-4.5",
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look:"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/jpeg", "data": "QQ"},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                    {"type": "document", "source": {"type": "text", "data": "dropped"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Hmm.", "signature": "sig-1"},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "thinking", "thinking": "Thinking...", "signature": "gAAA@rs_2"},
                    {"type": "text", "text": "Calling."},
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "no"}],
                        "is_error": True,
                    },
                ],
            },
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "Alors?"},
        ],
        "tools": [
            {"name": "f", "description": "does f", "input_schema": {"type": "object"}},
            {"type": "web_search_20250305", "name": "web_search"},
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "max_tokens": 5000,
        "temperature": 1,
        "top_p": 0.9,
        "top_k": 5,
        "stop_sequences": ["END"],
        "stream": True,
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "output_config": {"effort": "medium"},
        "metadata": {"user_id": "u-1"},
    }
    request = CODEC.decode_request(body)
    assert request.system == ["Be brief.", "Be kind."]
    assert request.messages == [
        Message(
            "user",
            [Text("Look:"), Image("data:image/jpeg;base64,QQ"), Image("https://x/y.png")],
        ),
        Message(
            "assistant",
            [
                Reasoning("Hmm.", signature="sig-1"),
                Reasoning(redacted="opaque"),
                Reasoning("", encrypted="gAAA", item_id="rs_2"),  # the placeholder is no text
                Text("Calling."),
                ToolCall("toolu_1", "f", '{"a": 1}'),
            ],
        ),
        Message("user", [ToolResult("toolu_1", [Text("no")], is_error=True)]),
        Message("system", [Text("Answer in French.")]),
        Message("user", [Text("Alors?")]),
    ]
    assert request.tools == [Tool("f", "does f", {"type": "object"})]
    assert request.tool_choice == ToolChoice("required")
    assert request.parallel_tool_calls is False
    assert (request.max_tokens, request.temperature, request.top_p) == (5000, 1, 0.9)
    assert request.stop == ["END"]
    assert request.stream and request.thinking
    assert (request.thinking_budget, request.effort, request.user) == (2000, "medium", "u-1")
    assert request.extra == {"top_k": 5}


def test_system_messages_inside_messages_are_accepted() -> None:
    # What Claude Code sends when its model is not a Claude model.
    body = {
        "model": "gpt-4.1",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "You are Claude Code."}]},
            {"role": "user", "content": "hi"},
        ],
    }
    request = CODEC.decode_request(body)
    assert request.messages[0] == Message("system", [Text("You are Claude Code.")])
    chat = ChatCodec().encode_request(request, "gpt-4.1", Capabilities())
    assert chat["messages"] == [
        {"role": "system", "content": "You are Claude Code."},
        {"role": "user", "content": "hi"},
    ]


@pytest.mark.parametrize(
    ("thinking", "wanted"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, True),
        ({"type": "adaptive"}, True),
        ({"type": "disabled"}, False),
        (None, False),
    ],
)
def test_thinking_is_asked_for_unless_absent_or_disabled(thinking: Any, wanted: bool) -> None:
    body = {"messages": [], "thinking": thinking}
    assert CODEC.decode_request(body).thinking is wanted


@pytest.mark.parametrize(
    "body",
    [
        "x",
        {"messages": None},
        {"messages": [{"role": "tool", "content": "x"}]},
        {"messages": [{"role": "user", "content": 5}]},
        {"messages": ["x"]},
        {"messages": [], "tools": "f"},
    ],
)
def test_malformed_requests_are_refused(body: Any) -> None:
    with pytest.raises(TranslationError):
        CODEC.decode_request(body)


# Requests out ---------------------------------------------------------------------


def test_mid_conversation_system_turns_move_to_system_in_order() -> None:
    request = _request(
        system=["First."],
        messages=[
            Message("user", [Text("a")]),
            Message("system", [Text("Second.")]),
            Message("user", [Text("b")]),
            Message("assistant", [Text("c")]),
        ],
    )
    body = CODEC.encode_request(request, "claude-sonnet-4.5", SONNET_45)
    assert body["system"] == [
        {"type": "text", "text": "First."},
        {"type": "text", "text": "Second."},
    ]
    # The two user turns the system turn stood between are one turn now.
    assert body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "c"}]},
    ]


def test_only_claude_signatures_go_back_to_the_native_endpoint() -> None:
    request = _request(
        messages=[
            Message(
                "assistant",
                [
                    Reasoning("Claude's.", signature="sig-claude"),
                    Reasoning("GPT's.", encrypted="gAAA", item_id="rs_1"),
                    Reasoning("Smuggled.", signature="gAAA@rs_1"),
                    Reasoning("Unsigned."),
                    Reasoning(redacted="opaque"),
                    Text(""),
                    ToolCall("call.1/x", "f", "not json"),
                ],
            ),
            Message("user", [ToolResult("call.1/x", [Text("ok"), Image("https://x/i.png")])]),
        ]
    )
    body = CODEC.encode_request(request, "claude-sonnet-4.5", SONNET_45)
    assert body["messages"] == [
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Claude's.", "signature": "sig-claude"},
                {"type": "redacted_thinking", "data": "opaque"},
                {
                    "type": "tool_use",
                    "id": "call_1_x",
                    "name": "f",
                    "input": {"_raw_arguments": "not json"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "call_1_x",
                    "content": [
                        {"type": "text", "text": "ok"},
                        {"type": "image", "source": {"type": "url", "url": "https://x/i.png"}},
                    ],
                }
            ],
        },
    ]


@pytest.mark.parametrize(
    ("budget", "max_tokens", "sent"),
    [
        (2000, 5000, 2000),
        (100, 5000, 1024),  # raised to the model's minimum
        (50000, 60000, 32000),  # lowered to the model's maximum
        (8000, 4000, 3999),  # below max_tokens
        (None, 10000, 5000),  # none asked: half the limit at most
    ],
)
def test_thinking_budgets_are_clamped_to_what_the_model_takes(
    budget: int | None, max_tokens: int, sent: int
) -> None:
    caps = Capabilities(min_thinking_budget=1024, max_thinking_budget=32000)
    request = _request(
        thinking=True, thinking_budget=budget, max_tokens=max_tokens, temperature=0.3
    )
    body = CODEC.encode_request(request, "claude-sonnet-4.5", caps)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": sent}
    assert "temperature" not in body  # Anthropic refuses it with thinking


def test_no_thinking_when_no_budget_fits_or_a_tool_is_forced() -> None:
    tiny = _request(thinking=True, max_tokens=1000)
    assert "thinking" not in CODEC.encode_request(tiny, "m", SONNET_45)
    forced = _request(
        thinking=True, tools=[Tool("f")], tool_choice=ToolChoice("tool", "f"), temperature=0.5
    )
    body = CODEC.encode_request(forced, "m", SONNET_45)
    assert "thinking" not in body
    assert body["tool_choice"] == {"type": "tool", "name": "f"}
    assert body["temperature"] == 0.5


def test_adaptive_models_get_adaptive_thinking_and_a_listed_effort() -> None:
    body = CODEC.encode_request(
        _request(thinking=True, effort="high"), "claude-sonnet-4.6", SONNET_46
    )
    assert body["thinking"] == {"type": "adaptive"}
    assert body["output_config"] == {"effort": "high"}
    unlisted = CODEC.encode_request(_request(thinking=True, effort="xhigh"), "m", SONNET_46)
    assert "output_config" not in unlisted
    older = CODEC.encode_request(_request(thinking=True, effort="high"), "m", SONNET_45)
    assert "output_config" not in older


def test_limits_tools_and_the_rest() -> None:
    request = _request(
        tools=[Tool("f", "does f", {"type": "object"})],
        parallel_tool_calls=False,
        top_p=0.5,
        temperature=0.2,
        stop=["X"],
        stream=True,
        user="u-1",
        response_format={"type": "json_object"},
    )
    body = CODEC.encode_request(request, "claude-haiku-4.5", Capabilities(max_output_tokens=8000))
    assert body["max_tokens"] == 8000  # Anthropic requires one
    assert body["tools"] == [
        {"name": "f", "description": "does f", "input_schema": {"type": "object"}}
    ]
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert body["temperature"] == 0.2 and "top_p" not in body  # newer Claudes refuse both
    assert (body["stop_sequences"], body["stream"]) == (["X"], True)
    assert body["metadata"] == {"user_id": "u-1"}
    assert "response_format" not in body


def test_a_messages_request_comes_back_as_it_went() -> None:
    body = {
        "model": "claude-sonnet-4.5",
        "max_tokens": 4000,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Add."}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Sum.", "signature": "sig"},
                    {"type": "tool_use", "id": "toolu_1", "name": "add", "input": {"a": 1}},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "2"}],
            },
        ],
        "system": [{"type": "text", "text": "Be brief."}],
        "tools": [{"name": "add", "description": "", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "auto"},
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "top_k": 3,
    }
    request = CODEC.decode_request(body)
    assert CODEC.encode_request(request, "claude-sonnet-4.5", SONNET_45) == body


# Answers ---------------------------------------------------------------------------


def test_a_native_answer_decodes_and_reaches_a_client_unchanged() -> None:
    body = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4.5",
        "content": [
            {"type": "thinking", "thinking": "Sum.", "signature": "sig"},
            {"type": "text", "text": "Adding."},
            {"type": "tool_use", "id": "toolu_1", "name": "add", "input": {"a": 1}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 6,
            "output_tokens": 3,
            "cache_read_input_tokens": 4,
            "cache_creation_input_tokens": 2,
        },
        "copilot_usage": {"total_nano_aiu": 5},
    }
    answer = CODEC.decode_answer(body)
    assert answer.id == "01"
    assert answer.stop is Stop.TOOL_USE
    assert answer.usage == Usage(
        input=6, cached=4, cache_write=2, output=3, copilot_usage={"total_nano_aiu": 5}
    )
    assert CODEC.encode_answer(answer, "claude-sonnet-4.5") == body


def test_a_chat_answer_reaches_a_messages_client_with_usage_apart_from_the_cache() -> None:
    completion = {
        "id": "chatcmpl-2",
        "choices": [{"message": {"content": "Hi."}, "finish_reason": "content_filter"}],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 1,
            "prompt_tokens_details": {"cached_tokens": 7},
        },
    }
    message = CODEC.encode_answer(ChatCodec().decode_answer(completion), "claude-x")
    assert message["stop_reason"] == "refusal"
    assert message["usage"] == {
        "input_tokens": 3,
        "output_tokens": 1,
        "cache_read_input_tokens": 7,
    }


def test_a_responses_item_reaches_a_client_as_a_thinking_block_it_can_replay() -> None:
    answer = Answer("1", "gpt-5.4", [Reasoning("", encrypted="gAAA", item_id="rs_1"), Text("Hi.")])
    message = CODEC.encode_answer(answer, "gpt-5.4")
    assert message["content"][0] == {
        "type": "thinking",
        "thinking": "Thinking...",
        "signature": "gAAA@rs_1",
    }
    replayed = CODEC.decode_request(
        {"messages": [{"role": "assistant", "content": message["content"]}]}
    )
    assert replayed.messages[0].parts[0] == Reasoning("", encrypted="gAAA", item_id="rs_1")


def test_encoders_never_invent_a_signature() -> None:
    answer = Answer("1", "gemini", [Reasoning("Plain thoughts."), Reasoning(""), Text("Hi.")])
    assert CODEC.encode_answer(answer, "m")["content"] == [
        {"type": "thinking", "thinking": "Plain thoughts.", "signature": ""},
        {"type": "text", "text": "Hi."},
    ]


# Streams in -----------------------------------------------------------------------

NATIVE = [
    _event(
        "message_start",
        message={
            "id": "msg_5",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4.5",
            "content": [],
            "usage": {"input_tokens": 9, "output_tokens": 1, "cache_read_input_tokens": 2},
        },
    ),
    _event("content_block_start", index=0, content_block={"type": "thinking", "thinking": ""}),
    _event("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "Hm."}),
    _event("ping"),
    _event("content_block_delta", index=0, delta={"type": "signature_delta", "signature": "sig"}),
    _event("content_block_stop", index=0),
    _event("content_block_start", index=1, content_block={"type": "text", "text": ""}),
    _event("content_block_delta", index=1, delta={"type": "text_delta", "text": "Hi."}),
    _event("content_block_stop", index=1),
    _event(
        "content_block_start",
        index=2,
        content_block={"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
    ),
    _event(
        "content_block_delta", index=2, delta={"type": "input_json_delta", "partial_json": '{"a"'}
    ),
    _event(
        "content_block_delta", index=2, delta={"type": "input_json_delta", "partial_json": ":1}"}
    ),
    _event("content_block_stop", index=2),
    _event(
        "message_delta",
        delta={"stop_reason": "tool_use", "stop_sequence": None},
        usage={"output_tokens": 12},
        copilot_usage={"total_nano_aiu": 4},
    ),
    _event("message_stop"),
]


def test_the_native_stream_decodes_thinking_text_and_tool_calls() -> None:
    assert _decode_all(NATIVE) == [
        Started("5", "claude-sonnet-4.5", Usage(input=9, cached=2, output=1)),
        ReasoningDelta("Hm."),
        ReasoningDone(signature="sig"),
        TextDelta("Hi."),
        ToolCallStarted(0, "toolu_1", "f"),
        ToolArguments(0, '{"a"'),
        ToolArguments(0, ":1}"),
        Finished(
            Stop.TOOL_USE,
            Usage(input=9, cached=2, output=12, copilot_usage={"total_nano_aiu": 4}),
        ),
    ]


def test_a_native_stream_cut_before_message_stop_failed() -> None:
    events = _decode_all(NATIVE[:8])
    assert isinstance(events[-1], Failed)
    assert not any(isinstance(e, Finished) for e in events)


def test_an_error_event_fails_the_native_stream() -> None:
    error = _event("error", error={"type": "overloaded_error", "message": "Overloaded"})
    assert _decode_all([*NATIVE[:3], error])[-1] == Failed("Overloaded")


def test_a_native_stream_passes_through_the_codecs_unchanged_for_the_sdk() -> None:
    wire = b"".join(f"event: {json.loads(d)['type']}\ndata: {d}\n\n".encode() for d in NATIVE)
    stream = StreamTranslation(CODEC, CODEC, "claude-sonnet-4.5")
    events = anthropic_events(stream.feed(wire) + stream.end())
    seen = check_anthropic(events)
    assert (seen.thinking, seen.signatures, seen.text) == ("Hm.", ["sig"], "Hi.")
    assert seen.tools == [("f", '{"a":1}')]
    message = anthropic_message(events)
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[0].type == "thinking" and message.content[0].signature == "sig"
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (9, 12)
    assert message.usage.cache_read_input_tokens == 2


def test_a_native_stream_reaches_a_chat_client_with_copilot_reasoning_fields() -> None:
    wire = b"".join(f"event: {json.loads(d)['type']}\ndata: {d}\n\n".encode() for d in NATIVE)
    stream = StreamTranslation(CODEC, ChatCodec(), "claude-sonnet-4.5")
    seen = check_chat(stream.feed(wire) + stream.end())
    assert (seen.thinking, seen.signatures, seen.text) == ("Hm.", ["sig"], "Hi.")
    assert seen.tools == [("f", '{"a":1}')]
    assert seen.stop == "tool_calls"


# Streams out -----------------------------------------------------------------------


def test_blocks_open_and_close_as_the_kind_of_content_changes() -> None:
    encoder = CODEC.stream_encoder("claude-x")
    out = encoder.feed([Started("3", "up"), ReasoningDelta("A"), ReasoningDelta("B")])
    out += encoder.feed([TextDelta("one"), ReasoningDelta("C"), ReasoningDone(signature="s2")])
    out += encoder.feed([ReasoningDone(redacted="r"), TextDelta("two")])
    out += encoder.feed([ToolCallStarted(0, "call_1", "f"), ToolCallStarted(1, "call_2", "g")])
    out += encoder.feed([ToolArguments(1, "{}"), ToolArguments(0, "{}")])
    out += encoder.feed([Finished(Stop.END, Usage(input=1, output=2))])
    events = anthropic_events(out)
    starts = [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"]
    assert starts == [
        "thinking",
        "text",
        "thinking",
        "redacted_thinking",
        "text",
        "tool_use",
        "tool_use",
    ]
    message = anthropic_message(events)
    assert message.id == "msg_3" and message.model == "claude-x"
    assert message.stop_reason == "tool_use"  # calls were made
    first, *_ = message.content
    assert first.type == "thinking" and (first.thinking, first.signature) == ("AB", "")
    assert encoder.feed([TextDelta("late")]) == b""


def test_a_failed_stream_ends_with_one_error_event() -> None:
    encoder = CODEC.stream_encoder("m")
    out = encoder.feed([Started("1", "m"), TextDelta("Hi"), Failed("quota exceeded")])
    out += encoder.feed([TextDelta("more"), Finished(Stop.END)])
    names = [name for name, _ in [(e["type"], e) for e in anthropic_events(out)]]
    assert names == ["message_start", "content_block_start", "content_block_delta", "error"]
    assert out.endswith(CODEC.error_event("quota exceeded"))


def test_a_responses_carrier_streams_out_with_a_placeholder_text() -> None:
    encoder = CODEC.stream_encoder("gpt-5.4")
    out = encoder.feed(
        [
            Started("1", "gpt-5.4"),
            ReasoningDone(encrypted="gAAA", item_id="rs_1"),
            TextDelta("Hi."),
            Finished(Stop.END),
        ]
    )
    seen = check_anthropic(anthropic_events(out))
    assert (seen.thinking, seen.signatures) == ("Thinking...", ["gAAA@rs_1"])
