"""
The Responses codec without a reactor: requests both ways, answers both
ways, Copilot's event stream in and a client's event stream out, checked
against the real C{openai} SDK's types and stream parser, and Hypothesis
properties that split upstream streams at any byte.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx2
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.responses import (
    Response,
    ResponseInputParam,
    ResponseStreamEvent,
    ToolParam,
)
from pydantic import TypeAdapter

from copilot_proxy.translate import (
    Answer,
    Capabilities,
    Event,
    Failed,
    Finished,
    Image,
    Message,
    Reasoning,
    ReasoningDelta,
    ReasoningDone,
    Request,
    ResponsesCodec,
    Shape,
    Started,
    Stop,
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
from copilot_proxy.wire import SSESplitter

JSON = dict[str, Any]

CODEC = ResponsesCodec()
GPT = Capabilities(reasoning_effort=("low", "medium", "high"), max_output_tokens=64000)
STREAM_EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
INPUT_ITEMS: TypeAdapter[Any] = TypeAdapter(ResponseInputParam)
TOOLS: TypeAdapter[Any] = TypeAdapter(list[ToolParam])


# Requests in -------------------------------------------------------------------


def test_request_decoding_keeps_what_the_neutral_model_holds() -> None:
    body = {
        "model": "gemini-2.5-pro",
        "instructions": "Be brief.",
        "input": [
            {"role": "developer", "content": "Use tools."},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is in"},
                    {
                        "type": "input_image",
                        "image_url": "data:image/png;base64,AA",
                        "detail": "low",
                    },
                ],
            },
            {
                "type": "reasoning",
                "id": "rs_1",
                "encrypted_content": "gAAA",
                "summary": [{"type": "summary_text", "text": "Look."}],
            },
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
            },
            {"type": "function_call", "call_id": "call_1", "name": "look", "arguments": "{}"},
            {"type": "function_call", "call_id": "call_2", "name": "look", "arguments": '{"x":1}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "a cat"},
            {
                "type": "function_call_output",
                "call_id": "call_2",
                "output": [{"type": "input_text", "text": "a dog"}],
            },
            {"role": "system", "content": "Now answer."},
        ],
        "tools": [
            {
                "type": "function",
                "name": "look",
                "description": "Look.",
                "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}},
            },
            {"type": "web_search"},
        ],
        "tool_choice": {"type": "function", "name": "look"},
        "parallel_tool_calls": True,
        "max_output_tokens": 500,
        "temperature": 0.5,
        "top_p": 0.9,
        "stream": True,
        "reasoning": {"effort": "high", "summary": "auto"},
        "safety_identifier": "user-7",
        "text": {
            "format": {
                "type": "json_schema",
                "name": "out",
                "schema": {"type": "object"},
                "strict": True,
            }
        },
    }
    request = CODEC.decode_request(body)
    assert request.system == ["Be brief.", "Use tools."]
    assert request.messages == [
        Message("user", [Text("What is in"), Image("data:image/png;base64,AA", "low")]),
        Message(
            "assistant",
            [
                Reasoning(text="Look.", encrypted="gAAA", item_id="rs_1"),
                Text("Checking."),
                ToolCall("call_1", "look", "{}"),
                ToolCall("call_2", "look", '{"x":1}'),
            ],
        ),
        Message(
            "user",
            [ToolResult("call_1", [Text("a cat")]), ToolResult("call_2", [Text("a dog")])],
        ),
        Message("system", [Text("Now answer.")]),
    ]
    assert [t.name for t in request.tools] == ["look"]
    assert request.tool_choice == ToolChoice("tool", "look")
    assert (request.parallel_tool_calls, request.max_tokens, request.stream) == (True, 500, True)
    assert (request.temperature, request.top_p) == (0.5, 0.9)
    assert (request.thinking, request.effort, request.user) == (True, "high", "user-7")
    assert request.response_format == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
    }


def test_a_string_input_is_one_user_turn() -> None:
    request = CODEC.decode_request({"model": "m", "input": "hi"})
    assert request.messages == [Message("user", [Text("hi")])]
    assert request.source == Shape.RESPONSES
    assert (request.thinking, request.stream, request.tools) == (False, False, [])


def test_previous_response_id_is_refused_with_what_to_do_instead() -> None:
    with pytest.raises(TranslationError, match="send the whole conversation in input"):
        CODEC.decode_request({"model": "m", "input": "hi", "previous_response_id": "resp_1"})


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"input": "hi"}, "needs a model"),
        ({"model": "m"}, "needs input"),
        ({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}, "item_reference"),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_file"}]}]},
            "input_file",
        ),
        ({"model": "m", "input": "hi", "max_output_tokens": "9"}, "max_output_tokens"),
        ({"model": "m", "input": "hi", "background": True}, "background"),
        ({"model": "m", "input": [{"type": "function_call", "name": "f"}]}, "call_id"),
    ],
)
def test_what_cannot_be_translated_is_refused(body: JSON, reason: str) -> None:
    with pytest.raises(TranslationError, match=reason):
        CODEC.decode_request(body)


# Requests out -----------------------------------------------------------------


def _request(**fields: Any) -> Request:
    fields.setdefault("messages", [Message("user", [Text("hi")])])
    return Request(model="client-model", **fields)


def test_request_encoding_for_copilot_responses() -> None:
    request = _request(
        system=["Be brief.", "Be kind."],
        messages=[
            Message("user", [Text("Look"), Image("https://x/cat.png")]),
            Message(
                "assistant",
                [
                    Reasoning(text="Hm.", encrypted="gAAA", item_id="rs_1"),
                    Reasoning(text="Thinking...", signature="gBBB@rs_2"),
                    Reasoning(text="Claude thought", signature="EqQBCkYIBRgCKkA"),
                    Text("Looking."),
                    ToolCall("toolu_1", "look", '{"at":"cat"}'),
                    ToolCall("toolu_2", "look", ""),
                ],
            ),
            Message(
                "user",
                [
                    ToolResult("toolu_1", [Text("a cat"), Image("data:image/png;base64,AA")]),
                    ToolResult("toolu_2", [Text("boom")], is_error=True),
                    Text("And?"),
                ],
            ),
            Message("system", [Text("Answer now.")]),
        ],
        tools=[Tool("look", "Look at a thing.", {"type": "object", "properties": {}})],
        tool_choice=ToolChoice("required"),
        parallel_tool_calls=False,
        max_tokens=1000,
        temperature=0.2,
        top_p=0.5,
        stop=["END"],
        stream=True,
        effort="medium",
        user="u-1",
        response_format={"type": "json_object"},
    )
    body = CODEC.encode_request(request, "gpt-5.4", GPT)
    assert body["model"] == "gpt-5.4"
    assert body["instructions"] == "Be brief.\n\nBe kind."
    assert body["input"] == [
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Look"},
                {"type": "input_image", "image_url": "https://x/cat.png", "detail": "auto"},
            ],
        },
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "Hm."}],
            "encrypted_content": "gAAA",
        },
        {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "gBBB"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Looking.", "annotations": []}],
        },
        {
            "type": "function_call",
            "call_id": "toolu_1",
            "name": "look",
            "arguments": '{"at":"cat"}',
        },
        {"type": "function_call", "call_id": "toolu_2", "name": "look", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "toolu_1", "output": "a cat"},
        {
            "type": "function_call_output",
            "call_id": "toolu_2",
            "output": "boom",
            "status": "incomplete",
        },
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_image", "image_url": "data:image/png;base64,AA", "detail": "auto"},
                {"type": "input_text", "text": "And?"},
            ],
        },
        {
            "type": "message",
            "role": "system",
            "content": [{"type": "input_text", "text": "Answer now."}],
        },
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "name": "look",
            "description": "Look at a thing.",
            "parameters": {"type": "object", "properties": {}},
            "strict": False,
        }
    ]
    assert body["tool_choice"] == "required"
    assert body["parallel_tool_calls"] is False
    assert body["max_output_tokens"] == 1000
    assert body["reasoning"] == {"effort": "medium", "summary": "auto"}
    assert body["text"] == {"format": {"type": "json_object"}}
    assert (body["safety_identifier"], body["prompt_cache_key"]) == ("u-1", "u-1")
    assert (body["stream"], body["store"]) == (True, False)
    assert body["include"] == ["reasoning.encrypted_content"]
    for absent in ("temperature", "top_p", "stop", "user"):
        assert absent not in body
    # The SDK types an assistant replay as an output message with id and
    # status; the API (and VS Code) take it without, as above.
    INPUT_ITEMS.validate_python([i for i in body["input"] if i.get("role") != "assistant"])
    TOOLS.validate_python(body["tools"])


def test_a_named_tool_choice_and_no_tools_without_tools() -> None:
    named = CODEC.encode_request(
        _request(tools=[Tool("f")], tool_choice=ToolChoice("tool", "f")), "m", GPT
    )
    assert named["tool_choice"] == {"type": "function", "name": "f"}
    bare = CODEC.encode_request(_request(tool_choice=ToolChoice("none")), "m", GPT)
    assert "tools" not in bare and "tool_choice" not in bare


@pytest.mark.parametrize(
    ("fields", "listed", "effort"),
    [
        ({"thinking": True, "thinking_budget": 1024}, ("low", "medium", "high"), "low"),
        ({"thinking": True, "thinking_budget": 2048}, ("low", "medium", "high"), "low"),
        ({"thinking": True, "thinking_budget": 8192}, ("low", "medium", "high"), "medium"),
        ({"thinking": True, "thinking_budget": 32000}, ("low", "medium", "high"), "high"),
        ({"thinking": True, "thinking_budget": 32000}, ("low", "medium"), "medium"),
        ({"thinking": True, "thinking_budget": 1024}, ("medium", "high"), "medium"),
        ({"thinking": True}, ("low", "medium", "high"), "medium"),
        ({"effort": "xhigh"}, ("low", "medium", "high"), "high"),
        ({"effort": "minimal"}, ("minimal", "low"), "minimal"),
        ({"effort": "none"}, ("none", "low"), "none"),
        ({"effort": "none"}, ("low", "medium"), None),
        ({"effort": "turbo"}, ("low", "medium"), None),
        ({"thinking": True, "thinking_budget": 4096}, (), None),
        ({}, ("low", "medium", "high"), None),
    ],
)
def test_effort_is_one_the_model_lists(
    fields: JSON, listed: tuple[str, ...], effort: str | None
) -> None:
    body = CODEC.encode_request(_request(**fields), "m", Capabilities(reasoning_effort=listed))
    assert body.get("reasoning") == (
        None if effort is None else {"effort": effort, "summary": "auto"}
    )


def test_max_output_tokens_is_kept_within_what_the_api_takes() -> None:
    assert CODEC.encode_request(_request(max_tokens=1), "m", GPT)["max_output_tokens"] == 16
    assert CODEC.encode_request(_request(max_tokens=10**6), "m", GPT)["max_output_tokens"] == 64000
    assert "max_output_tokens" not in CODEC.encode_request(_request(), "m", GPT)


#: Claude Code's C{metadata.user_id}: a JSON object, far over 64 characters.
CLAUDE_CODE_USER_ID = json.dumps(
    {
        "device_id": "434d16ef6392bb0b4e2e56af005c83cb30cfbd35f7ec302a3f24086abf3898ff",
        "account_uuid": "",
        "session_id": "c3925dd7-d446-4f22-8b0b-9f412b93f3ac",
    },
    separators=(",", ":"),
)


def test_a_user_id_over_64_characters_goes_as_its_digest() -> None:
    # The Responses API refuses a safety_identifier or prompt_cache_key over
    # 64 characters (400 string_above_max_length): Claude Code's user id
    # would fail every request to a Responses-only model.
    body = CODEC.encode_request(_request(user=CLAUDE_CODE_USER_ID), "m", GPT)
    digest = body["safety_identifier"]
    assert len(digest) == 64 and digest == body["prompt_cache_key"]
    assert CLAUDE_CODE_USER_ID not in json.dumps(body)
    again = CODEC.encode_request(_request(user=CLAUDE_CODE_USER_ID), "m", GPT)
    assert again["prompt_cache_key"] == digest  # stable, so the prompt cache still hits
    other = CODEC.encode_request(_request(user=CLAUDE_CODE_USER_ID + " "), "m", GPT)
    assert other["prompt_cache_key"] != digest
    fits = "u" * 64
    body = CODEC.encode_request(_request(user=fits), "m", GPT)
    assert (body["safety_identifier"], body["prompt_cache_key"]) == (fits, fits)
    wide = "é" * 40  # 40 characters, 80 bytes
    assert len(CODEC.encode_request(_request(user=wide), "m", GPT)["safety_identifier"]) == 64


def test_a_request_survives_the_round_trip() -> None:
    request = _request(
        system=["sys"],
        messages=[
            Message("user", [Text("q"), Image("https://x/i.png", "high")]),
            Message(
                "assistant",
                [
                    Reasoning("r", encrypted="gA", item_id="rs_9"),
                    ToolCall("c1", "f", '{"a":1}'),
                    ToolCall("c2", "f", "{}"),
                ],
            ),
            Message(
                "user", [ToolResult("c1", [Text("ok")]), ToolResult("c2", [Text("no")], True)]
            ),
        ],
        tools=[Tool("f", "does f", {"type": "object", "properties": {"a": {}}})],
        tool_choice=ToolChoice("tool", "f"),
        max_tokens=321,
        stream=True,
        effort="low",
        thinking=True,
        user="me",
        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": {}}},
    )
    back = CODEC.decode_request(CODEC.encode_request(request, "client-model", GPT))
    assert back.messages == request.messages
    for name in ("system", "tools", "tool_choice", "max_tokens", "stream", "effort", "thinking"):
        assert getattr(back, name) == getattr(request, name), name
    assert (back.user, back.response_format) == (request.user, request.response_format)


# Answers -------------------------------------------------------------------------


COPILOT_ANSWER: JSON = {
    "id": "resp_abc",
    "object": "response",
    "created_at": 1767225600,
    "model": "gpt-5.4",
    "status": "completed",
    "output": [
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA"},
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Let me look.", "annotations": []}],
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "look",
            "arguments": '{"at":"cat"}',
            "status": "completed",
        },
    ],
    "usage": {
        "input_tokens": 1200,
        "input_tokens_details": {"cached_tokens": 1000},
        "output_tokens": 80,
        "output_tokens_details": {"reasoning_tokens": 64},
        "total_tokens": 1280,
    },
    "copilot_usage": {"total_nano_aiu": 290550000},
}


def test_answer_decoding_keeps_items_stop_and_usage() -> None:
    answer = CODEC.decode_answer(COPILOT_ANSWER)
    assert (answer.id, answer.model, answer.stop) == ("resp_abc", "gpt-5.4", Stop.TOOL_USE)
    assert answer.parts == [
        Reasoning(encrypted="gAAAA", item_id="rs_1"),
        Text("Let me look."),
        ToolCall("call_1", "look", '{"at":"cat"}'),
    ]
    assert answer.usage == Usage(
        input=200,
        cached=1000,
        output=80,
        reasoning=64,
        copilot_usage={"total_nano_aiu": 290550000},
    )


@pytest.mark.parametrize(
    ("status", "details", "stop"),
    [
        ("incomplete", {"reason": "max_output_tokens"}, Stop.MAX_TOKENS),
        ("incomplete", {"reason": "content_filter"}, Stop.CONTENT_FILTER),
        ("completed", None, Stop.END),
    ],
)
def test_answer_status_gives_the_stop(status: str, details: JSON | None, stop: Stop) -> None:
    body: JSON = {"id": "r", "model": "m", "status": status, "incomplete_details": details}
    body["output"] = []
    assert CODEC.decode_answer(body).stop == stop


def test_a_refusal_is_text_with_a_refusal_stop() -> None:
    body = {
        "id": "r",
        "model": "m",
        "status": "completed",
        "output": [{"type": "message", "content": [{"type": "refusal", "refusal": "No."}]}],
    }
    answer = CODEC.decode_answer(body)
    assert (answer.parts, answer.stop) == ([Text("No.")], Stop.REFUSAL)


def test_a_failed_answer_is_refused() -> None:
    body = {"status": "failed", "output": [], "error": {"code": "server_error", "message": "boom"}}
    with pytest.raises(TranslationError, match="boom"):
        CODEC.decode_answer(body)


def test_encoded_answer_is_a_response_to_the_openai_sdk() -> None:
    answer = Answer(
        id="msg_01",
        model="claude-sonnet-4.6",
        parts=[
            Reasoning("I should look.", signature="EqQBClaude"),
            Reasoning(redacted="opaque"),
            Text("Looking"),
            Text(" now."),
            ToolCall("toolu_1", "look", '{"at":"cat"}'),
            Image("https://x/ignored.png"),
        ],
        stop=Stop.TOOL_USE,
        usage=Usage(
            input=10, cached=5, cache_write=3, output=7, copilot_usage={"total_nano_aiu": 1}
        ),
    )
    body = CODEC.encode_answer(answer, "client-model")
    response = Response.model_validate(body)
    assert (response.model, response.status, response.output_text) == (
        "client-model",
        "completed",
        "Looking now.",
    )
    assert [item.type for item in response.output] == [
        "reasoning",
        "reasoning",
        "message",
        "function_call",
    ]
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.total_tokens) == (18, 25)
    assert response.usage.input_tokens_details.cached_tokens == 5
    assert body["copilot_usage"] == {"total_nano_aiu": 1}
    # The client replays what it got; Claude's signature comes back whole.
    back = CODEC.decode_answer(body)
    assert back.parts == [
        Reasoning("I should look.", signature="EqQBClaude"),
        Reasoning(redacted="opaque"),
        Text("Looking"),
        Text(" now."),
        ToolCall("toolu_1", "look", '{"at":"cat"}'),
    ]
    assert back.usage == answer.usage


def test_an_incomplete_answer_says_why() -> None:
    body = CODEC.encode_answer(Answer("r", "m", [Text("cut")], Stop.MAX_TOKENS), "m")
    response = Response.model_validate(body)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


def test_a_copilot_answer_survives_the_round_trip() -> None:
    answer = CODEC.decode_answer(COPILOT_ANSWER)
    again = CODEC.decode_answer(CODEC.encode_answer(answer, "gpt-5.4"))
    assert (again.parts, again.stop, again.usage) == (answer.parts, answer.stop, answer.usage)


# Copilot's stream in -------------------------------------------------------------


def _frames(events: list[JSON]) -> bytes:
    out = b""
    for number, event in enumerate(events):
        data = json.dumps({**event, "sequence_number": number})
        out += f"event: {event['type']}\ndata: {data}\n\n".encode()
    return out


def _decode(raw: bytes, cuts: list[int] | None = None) -> list[Event]:
    """Neutral events of upstream bytes, cut into pieces at C{cuts}."""
    splitter, decoder = SSESplitter(), CODEC.stream_decoder()
    events: list[Event] = []
    edges = [0, *sorted(cuts or []), len(raw)]
    for start, stop in itertools.pairwise(edges):
        for sse in splitter.feed(raw[start:stop]):
            events += decoder.feed(sse.name or None, sse.data)
    for sse in splitter.close():
        events += decoder.feed(sse.name or None, sse.data)
    return events + decoder.end()


def _created(response_id: str = "resp_1") -> list[JSON]:
    response = {"id": response_id, "object": "response", "model": "gpt-5.4", "output": []}
    return [
        {"type": "response.created", "response": {**response, "status": "in_progress"}},
        {"type": "response.in_progress", "response": {**response, "status": "in_progress"}},
    ]


def _completed(output: list[JSON], status: str = "completed", **extra: Any) -> JSON:
    usage = {
        "input_tokens": 50,
        "input_tokens_details": {"cached_tokens": 20},
        "output_tokens": 9,
        "output_tokens_details": {"reasoning_tokens": 4},
    }
    kind = "response.completed" if status == "completed" else "response.incomplete"
    response = {"id": "resp_1", "status": status, "output": output, "usage": usage, **extra}
    return {"type": kind, "response": response, "copilot_usage": {"total_nano_aiu": 7}}


def test_a_copilot_stream_becomes_neutral_events() -> None:
    reasoning = {
        "type": "reasoning",
        "id": "rs_A",
        "summary": [{"type": "summary_text", "text": "Plan."}],
        "encrypted_content": "gAAA",
    }
    message = {
        "type": "message",
        "id": "msg_B",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Hi there", "annotations": []}],
    }
    raw = _frames(
        [
            *_created(),
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {"type": "reasoning", "id": "rs_x", "summary": []},
            },
            {"type": "response.output_item.done", "output_index": 0, "item": reasoning},
            {"type": "ping"},
            {
                "type": "response.output_item.added",
                "output_index": 1,
                "item": {"type": "message", "role": "assistant", "content": []},
            },
            {
                "type": "response.content_part.added",
                "output_index": 1,
                "content_index": 0,
                "item_id": "msg_y",
                "part": {"type": "output_text", "text": ""},
            },
            {
                "type": "response.output_text.delta",
                "output_index": 1,
                "content_index": 0,
                "item_id": "msg_y",
                "delta": "Hi ",
            },
            {
                "type": "response.output_text.delta",
                "output_index": 1,
                "content_index": 0,
                "item_id": "msg_z",
                "delta": "there",
            },
            {
                "type": "response.output_text.done",
                "output_index": 1,
                "content_index": 0,
                "item_id": "msg_y",
                "text": "Hi there",
            },
            {"type": "response.output_item.done", "output_index": 1, "item": message},
            _completed([reasoning, message]),
        ]
    )
    assert _decode(raw) == [
        Started("resp_1", "gpt-5.4"),
        ReasoningDelta("Plan."),
        ReasoningDone(encrypted="gAAA", item_id="rs_A"),
        TextDelta("Hi "),
        TextDelta("there"),
        Finished(
            Stop.END,
            Usage(input=30, cached=20, output=9, reasoning=4, copilot_usage={"total_nano_aiu": 7}),
        ),
    ]


def _call_events(index: int, call_id: str, name: str, pieces: list[str]) -> list[list[JSON]]:
    """The added, delta and done events of one function call item, ids changing on the way."""
    added = {
        "type": "response.output_item.added",
        "output_index": index,
        "item": {"type": "function_call", "call_id": call_id, "name": name, "arguments": ""},
    }
    deltas = [
        {
            "type": "response.function_call_arguments.delta",
            "output_index": index,
            "item_id": f"fc_delta_{index}_{n}",
            "delta": p,
        }
        for n, p in enumerate(pieces)
    ]
    arguments = "".join(pieces)
    done = [
        {
            "type": "response.function_call_arguments.done",
            "output_index": index,
            "item_id": f"fc_other_{index}",
            "arguments": arguments,
            "name": name,
        },
        {
            "type": "response.output_item.done",
            "output_index": index,
            "item": {
                "type": "function_call",
                "id": f"fc_done_{index}",
                "call_id": call_id,
                "name": name,
                "arguments": arguments,
                "status": "completed",
            },
        },
    ]
    return [[added], deltas, done]


def test_parallel_calls_are_kept_apart_by_output_index() -> None:
    first = _call_events(0, "call_a", "read", ['{"path"', ':"a"}'])
    second = _call_events(1, "call_b", "read", ['{"path"', ':"b"}'])
    interleaved = [
        *first[0],
        *second[0],
        second[1][0],
        first[1][0],
        first[1][1],
        second[1][1],
        *first[2],
        *second[2],
    ]
    events = _decode(_frames([*_created(), *interleaved, _completed([])]))
    assert events[1:-1] == [
        ToolCallStarted(0, "call_a", "read"),
        ToolCallStarted(1, "call_b", "read"),
        ToolArguments(1, '{"path"'),
        ToolArguments(0, '{"path"'),
        ToolArguments(0, ':"a"}'),
        ToolArguments(1, ':"b"}'),
    ]
    assert isinstance(events[-1], Finished) and events[-1].stop == Stop.TOOL_USE


def test_arguments_seen_only_when_done_are_sent_once() -> None:
    added, _, done = _call_events(0, "call_a", "ls", ["{}"])
    events = _decode(_frames([*_created(), *added, *done, _completed([])]))
    assert events[1:-1] == [ToolCallStarted(0, "call_a", "ls"), ToolArguments(0, "{}")]


def test_a_stream_without_its_terminal_event_fails() -> None:
    raw = _frames(
        [
            *_created(),
            {
                "type": "response.output_text.delta",
                "output_index": 0,
                "content_index": 0,
                "item_id": "m",
                "delta": "Hal",
            },
        ]
    )
    assert _decode(raw + b"data: [DONE]\n\n") == [
        Started("resp_1", "gpt-5.4"),
        TextDelta("Hal"),
        Failed("the upstream stream ended before the response completed"),
    ]


@pytest.mark.parametrize(
    "terminal",
    [
        {
            "type": "response.failed",
            "response": {
                "status": "failed",
                "error": {"code": "server_error", "message": "it broke"},
            },
        },
        {"type": "error", "code": "bad_request", "message": "it broke", "param": None},
    ],
)
def test_a_failed_stream_ends_in_failed_and_nothing_after(terminal: JSON) -> None:
    late = {"type": "response.output_text.delta", "output_index": 0, "delta": "late"}
    events = _decode(_frames([*_created(), terminal, late, _completed([])]))
    assert events == [Started("resp_1", "gpt-5.4"), Failed("it broke")]


def test_an_incomplete_stream_stops_at_max_tokens() -> None:
    terminal = _completed([], "incomplete", incomplete_details={"reason": "max_output_tokens"})
    events = _decode(_frames([*_created(), terminal]))
    assert isinstance(events[-1], Finished) and events[-1].stop == Stop.MAX_TOKENS


def test_a_stream_that_starts_without_created_still_starts() -> None:
    events = _decode(_frames([_completed([])]))
    assert isinstance(events[0], Started) and isinstance(events[1], Finished)


def test_a_malformed_event_is_a_translation_error() -> None:
    decoder = CODEC.stream_decoder()
    with pytest.raises(TranslationError):
        decoder.feed("response.created", "{not json")
    with pytest.raises(TranslationError, match="never added"):
        decoder.feed(
            None,
            json.dumps({"type": "response.function_call_arguments.delta", "output_index": 3}),
        )


# A client's stream out ---------------------------------------------------------------


def _client(raw: bytes) -> openai.OpenAI:
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=raw, headers={"content-type": "text/event-stream"})

    transport = httpx2.MockTransport(answer)
    return openai.OpenAI(
        api_key="sk-test",
        base_url="http://proxy.test/v1",
        http_client=httpx2.Client(transport=transport),
    )


def _client_events(raw: bytes) -> list[JSON]:
    """The client stream's events, each checked against the SDK's event types."""
    splitter = SSESplitter()
    events = []
    for sse in [*splitter.feed(raw), *splitter.close()]:
        payload = json.loads(sse.data)
        assert sse.name == payload["type"]
        STREAM_EVENTS.validate_python(payload)
        events.append(payload)
    return events


NEUTRAL_TURN: list[Event] = [
    Started("resp_1", "upstream-model"),
    ReasoningDelta("Think"),
    ReasoningDelta("ing."),
    ReasoningDone(signature="EqQBClaude"),
    TextDelta("Hello"),
    TextDelta(", world"),
    ToolCallStarted(0, "toolu_a", "read"),
    ToolCallStarted(1, "toolu_b", "grep"),
    ToolArguments(0, '{"path":'),
    ToolArguments(1, '{"q":"x"}'),
    ToolArguments(0, '"a"}'),
    Finished(
        Stop.TOOL_USE, Usage(input=5, cached=2, output=4, copilot_usage={"total_nano_aiu": 3})
    ),
]


def test_the_openai_sdk_reads_the_encoded_stream() -> None:
    raw = CODEC.stream_encoder("client-model").feed(NEUTRAL_TURN)
    client = _client(raw)
    kinds = [event.type for event in client.responses.create(model="m", input="hi", stream=True)]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    with client.responses.stream(model="m", input="hi") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "Hello, world"
    calls = [(o.call_id, o.name, o.arguments) for o in final.output if o.type == "function_call"]
    assert calls == [("toolu_a", "read", '{"path":"a"}'), ("toolu_b", "grep", '{"q":"x"}')]
    assert final.model == "client-model"
    assert final.usage is not None and final.usage.input_tokens == 7


def test_the_encoded_stream_is_well_formed_and_replays_reasoning() -> None:
    events = _client_events(CODEC.stream_encoder("client-model").feed(NEUTRAL_TURN))
    _assert_well_formed(events)
    terminal = events[-1]
    assert terminal["copilot_usage"] == {"total_nano_aiu": 3}
    reasoning = terminal["response"]["output"][0]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "Thinking."}]
    replay = CODEC.decode_request(
        {"model": "m", "input": [reasoning, {"role": "user", "content": "go"}]}
    )
    assert replay.messages[0].parts == [Reasoning("Thinking.", signature="EqQBClaude")]


def test_a_reasoning_id_known_only_at_the_end_travels_with_the_content() -> None:
    events = _client_events(
        CODEC.stream_encoder("m").feed(
            [
                Started("r", "m"),
                ReasoningDelta("x"),
                ReasoningDone(encrypted="gAAA", item_id="rs_real"),
                Finished(Stop.END),
            ]
        )
    )
    item = events[-1]["response"]["output"][0]
    assert item["id"] != "rs_real"
    replay = CODEC.decode_request(
        {"model": "m", "input": [item, {"role": "user", "content": "go"}]}
    )
    assert replay.messages[0].parts == [Reasoning("x", encrypted="gAAA", item_id="rs_real")]


def test_a_failure_is_response_failed_and_the_end() -> None:
    encoder = CODEC.stream_encoder("m")
    raw = encoder.feed([Started("r", "m"), TextDelta("par"), Failed("upstream went away")])
    raw += encoder.feed([TextDelta("more"), Finished(Stop.END)])
    events = _client_events(raw)
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["message"] == "upstream went away"
    assert [e["type"] for e in events].count("response.output_text.delta") == 1


def test_a_failure_before_anything_still_starts_the_stream() -> None:
    events = _client_events(CODEC.stream_encoder("m").feed([Failed("no")]))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.failed",
    ]


def test_max_tokens_ends_in_response_incomplete() -> None:
    raw = CODEC.stream_encoder("m").feed(
        [Started("r", "m"), TextDelta("a"), Finished(Stop.MAX_TOKENS)]
    )
    events = _client_events(raw)
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_the_error_event_is_an_sdk_error_event() -> None:
    events = _client_events(CODEC.error_event("quota exhausted"))
    assert events == [
        {
            "type": "error",
            "sequence_number": 0,
            "code": "server_error",
            "message": "quota exhausted",
            "param": None,
        }
    ]


# Properties: any upstream stream, split anywhere ----------------------------------------


_words = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=6)


@st.composite
def _items(draw: st.DrawFn) -> JSON:
    kind = draw(st.sampled_from(["reasoning", "message", "refusal", "call"]))
    item: JSON = {"kind": kind, "pieces": draw(st.lists(_words, max_size=4))}
    item["id_changes"] = draw(st.booleans())
    item["added_id"] = draw(st.booleans())
    if kind == "call":
        item["name"] = draw(st.sampled_from(["read", "grep", "edit"]))
        item["deltas"] = draw(st.booleans())
    if kind == "reasoning":
        item["summary_streamed"] = draw(st.booleans())
    return item


def _item_events(index: int, plan: JSON) -> list[JSON]:
    """Copilot's events for one planned output item (its ids may change)."""
    added_id = f"x{index}" if plan["added_id"] else None
    done_id = f"y{index}" if plan["id_changes"] or added_id is None else added_id
    text = "".join(plan["pieces"])
    kind = plan["kind"]
    where = {"output_index": index, "item_id": added_id or "", "content_index": 0}
    if kind == "call":
        call = {"type": "function_call", "call_id": f"call_{index}", "name": plan["name"]}
        deltas = [
            {"type": "response.function_call_arguments.delta", **where, "delta": p}
            for p in plan["pieces"]
            if plan["deltas"]
        ]
        done = {**call, "id": done_id, "arguments": text, "status": "completed"}
        middle = [
            *deltas,
            {
                "type": "response.function_call_arguments.done",
                **where,
                "arguments": text,
                "name": plan["name"],
            },
        ]
        added = {**call, "arguments": ""}
    elif kind == "reasoning":
        streamed = plan["summary_streamed"] and text
        middle = [
            {
                "type": "response.reasoning_summary_text.delta",
                **where,
                "summary_index": 0,
                "delta": p,
            }
            for p in plan["pieces"]
            if streamed
        ]
        summary = [{"type": "summary_text", "text": text}] if text else []
        added = {"type": "reasoning", "summary": []}
        done = {"type": "reasoning", "id": done_id, "summary": summary, "encrypted_content": "gE"}
    else:
        delta = "response.refusal.delta" if kind == "refusal" else "response.output_text.delta"
        part = (
            {"type": "refusal", "refusal": text}
            if kind == "refusal"
            else {"type": "output_text", "text": text, "annotations": []}
        )
        middle = [{"type": delta, **where, "delta": p} for p in plan["pieces"]]
        added = {"type": "message", "role": "assistant", "status": "in_progress", "content": []}
        done = {"type": "message", "id": done_id, "role": "assistant", "content": [part]}
    if added_id is not None:
        added["id"] = added_id
    return [
        {"type": "response.output_item.added", "output_index": index, "item": added},
        *middle,
        {"type": "response.output_item.done", "output_index": index, "item": done},
    ]


@st.composite
def _upstream(draw: st.DrawFn) -> tuple[list[JSON], list[JSON], str]:
    """A valid Copilot event sequence, its plan, and its terminal status."""
    plans = draw(st.lists(_items(), max_size=6))
    queues = [_item_events(i, p) for i, p in enumerate(plans)]
    events = list(_created())
    position = 0
    while position < len(queues):
        # Consecutive function calls may interleave; all else comes item by item.
        end = position + 1
        while end < len(queues) and plans[end]["kind"] == plans[position]["kind"] == "call":
            end += 1
        group = [list(q) for q in queues[position:end]]
        while any(group):
            open_ = [
                g
                for n, g in enumerate(group)
                if g and (n == 0 or len(group[n - 1]) < len(queues[position + n - 1]))
            ]
            chosen = draw(st.sampled_from(open_))
            events.append(chosen.pop(0))
            if draw(st.integers(0, 9)) == 0:
                events.append({"type": "ping"})
        position = end
    status = draw(st.sampled_from(["completed", "incomplete"]))
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    extra = (
        {"incomplete_details": {"reason": "max_output_tokens"}} if status == "incomplete" else {}
    )
    events.append(_completed(done, status, **extra))
    return events, plans, status


def _assert_well_formed(events: list[JSON]) -> None:
    kinds = [e["type"] for e in events]
    assert kinds[0] == "response.created"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    terminals = [
        k for k in kinds if k in ("response.completed", "response.incomplete", "response.failed")
    ]
    assert terminals == [kinds[-1]]
    added: dict[int, str] = {}
    done: dict[int, JSON] = {}
    for event in events:
        index: Any = event.get("output_index")
        if event["type"] == "response.output_item.added":
            assert index not in added
            added[index] = event["item"]["id"]
        elif event["type"] == "response.output_item.done":
            assert added[index] == event["item"]["id"] and index not in done
            done[index] = event["item"]
        elif index is not None:
            assert index in added and index not in done, event
            assert event["item_id"] == added[index]
    assert added.keys() == done.keys()
    assert events[-1]["response"]["output"] == [done[i] for i in sorted(done)]


@settings(max_examples=300)
@given(_upstream(), st.data())
def test_any_upstream_stream_split_anywhere_gives_a_well_formed_client_stream(
    upstream: tuple[list[JSON], list[JSON], str], data: st.DataObject
) -> None:
    events, plans, status = upstream
    raw = _frames(events)
    if data.draw(st.booleans()):
        raw = raw.replace(b"\n", b"\r\n")
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=12))
    neutral = _decode(raw, cuts)
    assert neutral == _decode(raw)
    client = _client_events(CODEC.stream_encoder("client-model").feed(neutral))
    _assert_well_formed(client)
    assert client[-1]["type"] == f"response.{status}"
    text = "".join(e["delta"] for e in client if e["type"] == "response.output_text.delta")
    assert text == "".join(
        "".join(p["pieces"]) for p in plans if p["kind"] in ("message", "refusal")
    )
    calls = [
        (i["call_id"], i["name"], i["arguments"])
        for i in client[-1]["response"]["output"]
        if i["type"] == "function_call"
    ]
    planned = [
        (f"call_{n}", p["name"], "".join(p["pieces"]))
        for n, p in enumerate(plans)
        if p["kind"] == "call"
    ]
    assert calls == planned
    summaries = [
        i["summary"] for i in client[-1]["response"]["output"] if i["type"] == "reasoning"
    ]
    assert summaries == [
        [{"type": "summary_text", "text": "".join(p["pieces"])}] if p["pieces"] else []
        for p in plans
        if p["kind"] == "reasoning"
    ]


@settings(max_examples=150)
@given(_upstream(), st.data())
def test_the_sdk_accepts_any_translated_stream(
    upstream: tuple[list[JSON], list[JSON], str], data: st.DataObject
) -> None:
    events, _, status = upstream
    raw = _frames(events)
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=8))
    client_raw = CODEC.stream_encoder("client-model").feed(_decode(raw, cuts))
    with _client(client_raw).responses.stream(model="m", input="hi") as stream:
        last = [event.type for event in stream][-1]
        # The SDK gives a final response for a completed stream only.
        if status == "completed":
            assert stream.get_final_response().status == "completed"
    assert last == f"response.{status}"
