"""
The Chat Completions codec without a reactor: requests both ways (with the
Copilot API's reasoning fields), whole answers both ways, chunk streams in
and out, read back by the real C{openai} SDK's types and stream state.
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

from ._clients import chat_completion, chat_lines, check_chat

JSON = dict[str, Any]

CODEC = ChatCodec()
GEMINI = Capabilities(reasoning_effort=("low", "high"), max_output_tokens=64000)


def _chunk(delta: JSON | None = None, finish: str | None = None, **extra: Any) -> JSON:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-7", "object": "chat.completion.chunk", "choices": choices, **extra}


def _decode_all(chunks: list[JSON], done: bool = True) -> list[Any]:
    decoder = CODEC.stream_decoder()
    events: list[Any] = []
    for chunk in chunks:
        events += decoder.feed(None, json.dumps(chunk))
    if done:
        events += decoder.feed(None, "[DONE]")
    return events + decoder.end()


# Requests in -------------------------------------------------------------------


def test_request_decoding_keeps_what_the_neutral_model_holds() -> None:
    body = {
        "model": "gpt-4.1",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://x/y.png", "detail": "low"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": "Looking.",
                "reasoning_text": "Hmm.",
                "reasoning_opaque": "sig-1",
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "f", "arguments": "{}"},
                    },
                    {
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "g", "arguments": "[]"},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "A"},
            {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "B"}]},
            {"role": "system", "content": "Now answer."},
            {"role": "user", "content": "So?"},
        ],
        "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "parallel_tool_calls": False,
        "max_completion_tokens": 99,
        "temperature": 0.2,
        "top_p": 0.5,
        "stop": "END",
        "stream": True,
        "stream_options": {"include_usage": True},
        "reasoning_effort": "high",
        "user": "u-1",
        "response_format": {"type": "json_object"},
        "seed": 3,
    }
    request = CODEC.decode_request(body)
    assert request.system == ["Be brief.", "Use tools."]
    assert request.messages == [
        Message("user", [Text("What is this?"), Image("https://x/y.png", "low")]),
        Message(
            "assistant",
            [
                Reasoning("Hmm.", signature="sig-1"),
                Text("Looking."),
                ToolCall("call_a", "f", "{}"),
                ToolCall("call_b", "g", "[]"),
            ],
        ),
        Message("user", [ToolResult("call_a", [Text("A")]), ToolResult("call_b", [Text("B")])]),
        Message("system", [Text("Now answer.")]),
        Message("user", [Text("So?")]),
    ]
    assert request.tools == [Tool("f", "", {"type": "object"})]
    assert request.tool_choice == ToolChoice("tool", "f")
    assert request.parallel_tool_calls is False
    assert (request.max_tokens, request.temperature, request.top_p) == (99, 0.2, 0.5)
    assert request.stop == ["END"]
    assert request.stream and request.thinking
    assert request.effort == "high"
    assert request.user == "u-1"
    assert request.response_format == {"type": "json_object"}
    assert request.extra == {"seed": 3}


def test_a_responses_carrier_in_reasoning_opaque_is_read_back_as_one() -> None:
    body = {
        "messages": [
            {"role": "assistant", "content": "x", "reasoning_opaque": "gAAAA@rs_9"},
        ]
    }
    [message] = CODEC.decode_request(body).messages
    assert message.parts[0] == Reasoning("", encrypted="gAAAA", item_id="rs_9")


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"messages": {}},
        {"messages": [{"role": "robot", "content": "x"}]},
        {"messages": [{"role": "user", "content": 3}]},
        {"messages": [], "tools": {}},
    ],
)
def test_malformed_requests_are_refused(body: Any) -> None:
    with pytest.raises(TranslationError):
        CODEC.decode_request(body)


# Requests out --------------------------------------------------------------------


def _request(**fields: Any) -> Request:
    return Request(model="m", messages=fields.pop("messages", []), **fields)


def test_system_turns_stay_in_place_and_tool_results_follow_their_calls() -> None:
    request = _request(
        system=["Be brief."],
        messages=[
            Message("user", [Text("Weather and time?")]),
            Message(
                "assistant",
                [
                    ToolCall("toolu_1", "weather", '{"city":"Paris"}'),
                    ToolCall("toolu_2", "time", "{}"),
                ],
            ),
            Message(
                "user",
                [
                    ToolResult("toolu_1", [Text("Sunny")]),
                    ToolResult("toolu_2", [Text("Noon"), Image("data:image/png;base64,AA")]),
                    Text("Thanks."),
                ],
            ),
            Message("system", [Text("Answer in French.")]),
            Message("user", [Text("Go on.")]),
        ],
    )
    body = CODEC.encode_request(request, "gemini-2.5-pro", GEMINI)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather and time?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "time", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "Sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Noon"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                {"type": "text", "text": "Thanks."},
            ],
        },
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Go on."},
    ]


def test_thinking_goes_to_chat_only_with_a_claude_signature() -> None:
    def sent(reasoning: Reasoning) -> JSON:
        request = _request(messages=[Message("assistant", [reasoning, Text("Hi.")])])
        message: JSON = CODEC.encode_request(request, "claude-sonnet-4", Capabilities())[
            "messages"
        ][0]
        return message

    signed = sent(Reasoning("Ponder.", signature="sig-claude"))
    assert (signed["reasoning_text"], signed["reasoning_opaque"]) == ("Ponder.", "sig-claude")
    for unsigned in (
        Reasoning("Ponder."),
        Reasoning("Ponder.", encrypted="gAAA", item_id="rs_1"),
        Reasoning("", signature="gAAA@rs_1"),
        Reasoning(redacted="opaque"),
    ):
        assert sent(unsigned) == {"role": "assistant", "content": "Hi."}


@pytest.mark.parametrize(
    ("effort", "caps", "sent"),
    [
        ("high", GEMINI, "high"),
        ("medium", GEMINI, None),  # not listed: dropped, not guessed
        ("high", Capabilities(), None),  # gpt-4.1 refuses the field
    ],
)
def test_reasoning_effort_is_sent_only_when_the_model_lists_it(
    effort: str, caps: Capabilities, sent: str | None
) -> None:
    body = CODEC.encode_request(_request(effort=effort, thinking=True), "m", caps)
    assert body.get("reasoning_effort") == sent


def test_limits_sampling_tools_and_streaming() -> None:
    request = _request(
        tools=[Tool("f", "does f", {"type": "object"})],
        tool_choice=ToolChoice("required"),
        parallel_tool_calls=True,
        max_tokens=100_000,
        temperature=0.0,
        stop=["X"],
        stream=True,
        response_format={"type": "json_object"},
        user="u-1",
        thinking_budget=2048,
    )
    body = CODEC.encode_request(request, "gpt-5-mini", GEMINI)
    assert body["max_completion_tokens"] == 64000  # clamped to the model's limit
    assert "max_tokens" not in body
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": "f", "description": "does f", "parameters": {"type": "object"}},
        }
    ]
    assert (body["tool_choice"], body["parallel_tool_calls"]) == ("required", True)
    assert (body["temperature"], body["stop"]) == (0.0, ["X"])
    assert body["stream_options"] == {"include_usage": True}
    assert body["response_format"] == {"type": "json_object"}
    assert "user" not in body and "thinking_budget" not in body


def test_a_chat_request_comes_back_as_it_went() -> None:
    body = {
        "model": "gpt-4.1",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Add 1 and 2."},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "add", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "3"},
        ],
        "max_tokens": 10,
        "seed": 5,
    }
    assert CODEC.encode_request(CODEC.decode_request(body), "gpt-4.1", Capabilities()) == body


def test_messages_tool_use_ids_pair_with_their_tool_messages() -> None:
    body = {
        "model": "gpt-4.1",
        "messages": [
            {"role": "user", "content": "Both, please."},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_A", "name": "a", "input": {"x": 1}},
                    {"type": "tool_use", "id": "toolu_B", "name": "b", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_A", "content": "1"},
                    {"type": "tool_result", "tool_use_id": "toolu_B", "is_error": True},
                ],
            },
        ],
    }
    sent = CODEC.encode_request(MessagesCodec().decode_request(body), "gpt-4.1", Capabilities())
    calls = sent["messages"][1]["tool_calls"]
    results = sent["messages"][2:]
    assert [c["id"] for c in calls] == ["toolu_A", "toolu_B"]
    assert [(r["tool_call_id"], r["content"]) for r in results] == [
        ("toolu_A", "1"),
        ("toolu_B", "error"),
    ]


# Answers ---------------------------------------------------------------------------


def test_answer_decoding_reads_reasoning_split_choices_and_usage() -> None:
    body = {
        "id": "chatcmpl-3",
        "model": "claude-sonnet-4",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Adding.",
                    "reasoning_text": "Sum.",
                    "reasoning_opaque": "sig",
                },
                "finish_reason": "stop",
            },
            {
                "index": 1,
                "message": {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "add", "arguments": "{}"},
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
            "completion_tokens_details": {"reasoning_tokens": 2},
        },
        "copilot_usage": {"total_nano_aiu": 7},
    }
    answer = CODEC.decode_answer(body)
    assert answer.id == "3"
    assert answer.parts == [
        Reasoning("Sum.", signature="sig"),
        Text("Adding."),
        ToolCall("c1", "add", "{}"),
    ]
    assert answer.stop is Stop.TOOL_USE
    assert answer.usage == Usage(
        input=6, cached=4, output=3, reasoning=2, copilot_usage={"total_nano_aiu": 7}
    )


def test_answer_encoding_is_a_completion_the_sdk_reads() -> None:
    answer = Answer(
        id="9",
        model="gpt-5.4",
        parts=[
            Reasoning("Think.", encrypted="gAAA", item_id="rs_1"),
            Text("Calling."),
            ToolCall("call_1", "f", '{"a":1}'),
        ],
        stop=Stop.TOOL_USE,
        usage=Usage(input=5, cached=3, output=2, copilot_usage={"total_nano_aiu": 1}),
    )
    body = CODEC.encode_answer(answer, "my-model")
    completion = chat_completion(body)
    assert completion.id == "chatcmpl-9"
    assert completion.model == "my-model"
    message = completion.choices[0].message
    assert message.content == "Calling."
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    assert call.type == "function"
    assert (call.id, call.function.name, call.function.arguments) == ("call_1", "f", '{"a":1}')
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (8, 2)
    assert body["choices"][0]["message"]["reasoning_opaque"] == "gAAA@rs_1"
    assert body["copilot_usage"] == {"total_nano_aiu": 1}
    # and back again
    assert CODEC.decode_answer(body).parts == answer.parts


@pytest.mark.parametrize(
    ("finish", "stop"),
    [
        ("stop", Stop.END),
        ("length", Stop.MAX_TOKENS),
        ("tool_calls", Stop.TOOL_USE),
        ("content_filter", Stop.CONTENT_FILTER),
        ("something_new", Stop.END),
    ],
)
def test_finish_reasons_map_both_ways(finish: str, stop: Stop) -> None:
    body = {"choices": [{"message": {"content": "x"}, "finish_reason": finish}]}
    assert CODEC.decode_answer(body).stop is stop
    events = _decode_all([_chunk({"content": "x"}, finish)])
    assert events[-1] == Finished(stop, None)
    if finish != "something_new":
        out = CODEC.encode_answer(Answer("1", "m", [Text("x")], stop), "m")
        assert out["choices"][0]["finish_reason"] == finish


def test_malformed_answers_are_refused() -> None:
    with pytest.raises(TranslationError):
        CODEC.decode_answer([])  # type: ignore[arg-type]
    with pytest.raises(TranslationError):
        CODEC.decode_answer({"choices": 5})


# Streams in -----------------------------------------------------------------------


def test_a_claude_stream_through_copilot_decodes_thinking_signature_and_calls() -> None:
    events = _decode_all(
        [
            _chunk({"role": "assistant", "reasoning_text": "Let me"}, model="claude-sonnet-4"),
            _chunk({"reasoning_text": " think."}),
            _chunk({"content": "", "reasoning_opaque": "sig-9"}),
            _chunk({"content": "Calling."}),
            _chunk({"tool_calls": [{"index": 1, "id": "toolu_1", "function": {"name": "f"}}]}),
            _chunk({"tool_calls": [{"index": 1, "function": {"arguments": '{"a":'}}]}),
            _chunk({"tool_calls": [{"index": 2, "id": "toolu_2", "function": {"name": "g"}}]}),
            _chunk({"tool_calls": [{"index": 1, "function": {"arguments": "1}"}}]}),
            _chunk({}, "tool_calls"),
            _chunk(
                None,
                usage={"prompt_tokens": 9, "completion_tokens": 4},
                copilot_usage={"total_nano_aiu": 3},
            ),
        ]
    )
    assert events == [
        Started("7", "claude-sonnet-4"),
        ReasoningDelta("Let me"),
        ReasoningDelta(" think."),
        ReasoningDone(signature="sig-9"),
        TextDelta("Calling."),
        ToolCallStarted(0, "toolu_1", "f"),
        ToolArguments(0, '{"a":'),
        ToolCallStarted(1, "toolu_2", "g"),
        ToolArguments(0, "1}"),
        Finished(Stop.TOOL_USE, Usage(input=9, output=4, copilot_usage={"total_nano_aiu": 3})),
    ]


def test_a_stream_that_ends_without_a_finish_reason_failed() -> None:
    events = _decode_all([_chunk({"content": "Hel"})], done=False)
    assert [type(e) for e in events] == [Started, TextDelta, Failed]


def test_a_finish_reason_without_done_still_finishes() -> None:
    events = _decode_all([_chunk({"content": "Hi"}, "length")], done=False)
    assert events[-1] == Finished(Stop.MAX_TOKENS, None)


def test_an_upstream_error_chunk_fails_the_stream() -> None:
    events = _decode_all([_chunk({"content": "Hi"}), {"error": {"message": "quota"}}])
    assert events[-1] == Failed("quota")


def test_ill_typed_choices_break_the_stream() -> None:
    decoder = CODEC.stream_decoder()
    with pytest.raises(TranslationError):
        decoder.feed(None, '{"choices": 5}')


# Streams out -----------------------------------------------------------------------


def test_stream_encoding_is_a_chunk_stream_the_sdk_assembles() -> None:
    encoder = CODEC.stream_encoder("my-model")
    out = encoder.feed([Started("5", "up"), TextDelta("Hel"), ReasoningDelta("Hm.")])
    out += encoder.feed([ReasoningDone(signature="sig"), TextDelta("lo")])
    out += encoder.feed(
        [
            ToolCallStarted(0, "call_a", "f"),
            ToolArguments(0, '{"x"'),
            ToolCallStarted(1, "", "g"),
            ToolArguments(1, "{}"),
            ToolArguments(0, ":1}"),
            Finished(Stop.TOOL_USE, Usage(input=2, cached=1, output=3)),
        ]
    )
    seen = check_chat(out)
    assert seen.text == "Hello"
    assert seen.tools == [("f", '{"x":1}'), ("g", "{}")]
    assert seen.ids[0] == "call_a" and seen.ids[1].startswith("call_")
    assert seen.stop == "tool_calls"
    assert (seen.thinking, seen.signatures) == ("Hm.", ["sig"])
    lines = chat_lines(out)
    first = json.loads(lines[0])
    assert first["id"] == "chatcmpl-5" and first["model"] == "my-model"
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    usage = json.loads(lines[-2])
    assert usage["choices"] == []
    assert usage["usage"]["prompt_tokens"] == 3
    assert encoder.feed([TextDelta("late")]) == b""


def test_a_failed_stream_ends_with_an_error_object_and_no_done() -> None:
    encoder = CODEC.stream_encoder("m")
    out = encoder.feed([Started("1", "m"), TextDelta("Hi"), Failed("cut short")])
    seen = check_chat(out)
    assert (seen.text, seen.error) == ("Hi", "cut short")
    assert out.endswith(CODEC.error_event("cut short"))
    assert json.loads(CODEC.error_event("x")[6:]) == {
        "error": {"message": "x", "type": "api_error", "code": None}
    }


def test_a_claude_stream_reaches_a_messages_client_with_its_signature() -> None:
    chunks = [
        _chunk({"reasoning_text": "Ponder."}),
        _chunk({"content": "", "reasoning_opaque": "sig-c"}),
        _chunk({"content": "Hi."}, "stop"),
    ]
    wire = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    stream = StreamTranslation(CODEC, MessagesCodec(), "claude-sonnet-4")
    out = stream.feed(wire + b"data: [DONE]\n\n") + stream.end()
    assert b'"signature_delta","signature":"sig-c"' in out
    assert b'"text_delta","text":"Hi."' in out
