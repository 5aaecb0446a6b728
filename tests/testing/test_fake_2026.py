"""
The fake Copilot API behaves like the 2026 service, over a real loopback
socket: its catalog, its endpoint refusals (byte for byte the bodies seen),
the Responses and native Messages streams, usage, and the quota headers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import pytest_twisted
from twisted.web.iweb import IResponse

from copilot_proxy.testing.fake_upstream import (
    ACCEPTED_TOKEN,
    CATALOG_2026,
    chat_stream_text,
    encrypted_reasoning,
    endpoints_of,
    native_stream_text,
    parse_quota,
    thinking_signature,
)

from .._helpers import Upstream, fetch

_COPILOT = {
    "authorization": f"Bearer {ACCEPTED_TOKEN}",
    "copilot-integration-id": "vscode-chat",
    "editor-version": "vscode/1.124.2",
    "editor-plugin-version": "copilot-chat/0.52.0",
    "content-type": "application/json",
}
_WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
_NATIVE_WEATHER = {"name": "get_weather", "input_schema": {"type": "object"}}
_HI = [{"role": "user", "content": "hi"}]


async def _post(
    upstream: Upstream, path: str, body: dict[str, Any], **fake: str
) -> tuple[IResponse, bytes]:
    headers = dict(_COPILOT)
    headers.update({f"x-fake-{k}": v for k, v in fake.items()})
    return await fetch(upstream.url + path, b"POST", headers, json.dumps(body).encode())


def _events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each server-sent event."""
    events = []
    for frame in body.split(b"\n\n"):
        if not frame:
            continue
        fields = dict(line.split(b": ", 1) for line in frame.split(b"\n"))
        events.append((fields[b"event"].decode(), json.loads(fields[b"data"])))
    return events


def _header(response: IResponse, name: str) -> str | None:
    values = response.headers.getRawHeaders(name.encode())
    return values[-1].decode() if values else None


# The catalog ----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_catalog_lists_every_kind_of_2026_model(upstream: Upstream) -> None:
    response, body = await fetch(upstream.url + "/models", headers=_COPILOT)
    assert response.code == 200
    listed = json.loads(body)
    assert listed["object"] == "list"
    entries = listed["data"]
    assert entries == CATALOG_2026
    by_id = {entry["id"]: entry for entry in entries}
    for old in ("gpt-4o", "gpt-4.1", "claude-sonnet-4", "text-embedding-3-small"):
        assert old in by_id
    ids = [entry["id"] for entry in entries]
    assert len(ids) > len(set(ids)), "the real catalog repeats ids; so must the fake"

    claude = by_id["claude-sonnet-4.6"]
    assert claude["supported_endpoints"] == ["/chat/completions", "/v1/messages"]
    assert claude["capabilities"]["supports"]["adaptive_thinking"] is True
    assert claude["capabilities"]["supports"]["min_thinking_budget"] == 1024
    assert claude["capabilities"]["supports"]["max_thinking_budget"] == 32000
    assert claude["capabilities"]["supports"]["reasoning_effort"] == ["low", "medium", "high"]
    for key in ("name", "vendor", "version", "object", "preview", "model_picker_enabled"):
        assert key in claude, key
    assert claude["policy"]["state"] == "enabled"
    assert by_id["gpt-5.4"]["supported_endpoints"] == ["/responses", "ws:/responses"]
    assert by_id["gpt-5.4"]["capabilities"]["supports"]["reasoning_effort"]
    assert by_id["gpt-5.2"]["supported_endpoints"] == [
        "/chat/completions",
        "/responses",
        "ws:/responses",
    ]
    assert by_id["gemini-3.1-pro-preview"]["supported_endpoints"] == ["/chat/completions"]
    assert by_id["claude-sonnet-4"]["supported_endpoints"] == ["/chat/completions", "/v1/messages"]
    for unlisted in ("gemini-2.5-pro", "gpt-4o", "gpt-4.1"):
        assert "supported_endpoints" not in by_id[unlisted], unlisted
    embeddings = by_id["text-embedding-3-small"]
    assert embeddings["capabilities"]["type"] == "embeddings"
    assert embeddings["model_picker_enabled"] is False
    assert by_id["gpt-41-copilot"]["capabilities"]["type"] == "completion"
    assert by_id["claude-opus-4.6"]["policy"]["state"] == "disabled"
    assert "policy" not in by_id["gpt-4o"]


def test_endpoints_of_reads_the_catalog() -> None:
    assert endpoints_of("gpt-5.4") == ("/responses", "ws:/responses")
    assert endpoints_of("claude-sonnet-4.6") == ("/chat/completions", "/v1/messages")
    assert endpoints_of("gemini-2.5-pro") is None
    with pytest.raises(KeyError):
        endpoints_of("not-in-the-catalog")


# Refusals ---------------------------------------------------------------------


def _not_accessible(model: str, endpoint: str) -> dict[str, Any]:
    message = f'model "{model}" is not accessible via the {endpoint} endpoint'
    return {"error": {"message": message, "code": "unsupported_api_for_model"}}


_NOT_SUPPORTED = {
    "error": {
        "message": "The requested model is not supported.",
        "code": "model_not_supported",
        "param": "model",
        "type": "invalid_request_error",
    }
}


@pytest.mark.parametrize(
    ("path", "model", "expected"),
    [
        ("/chat/completions", "gpt-5.4", _not_accessible("gpt-5.4", "/chat/completions")),
        ("/v1/messages", "gpt-5.4", _not_accessible("gpt-5.4", "/v1/messages")),
        ("/responses", "gpt-4o", _not_accessible("gpt-4o", "/responses")),
        ("/v1/messages", "gemini-2.5-pro", _not_accessible("gemini-2.5-pro", "/v1/messages")),
        ("/v1/messages", "gemini-3.1-pro-preview", None),
        (
            "/responses",
            "claude-sonnet-4.6",
            {
                "error": {
                    "message": "model claude-sonnet-4.6 does not support Responses API.",
                    "code": "unsupported_api_for_model",
                    "type": "invalid_request_error",
                }
            },
        ),
        (
            "/responses",
            "gemini-3.1-pro-preview",
            {
                "error": {
                    "message": "model gemini-3.1-pro-preview does not support Responses API.",
                    "code": "unsupported_api_for_model",
                    "type": "invalid_request_error",
                }
            },
        ),
        ("/chat/completions", "no-such-model", _NOT_SUPPORTED),
        ("/v1/messages", "claude-opus-4.6", _NOT_SUPPORTED),
        ("/chat/completions", "claude-opus-4.6", _NOT_SUPPORTED),
    ],
)
@pytest_twisted.ensureDeferred
async def test_a_model_on_an_endpoint_it_does_not_list_is_refused_with_the_body_seen(
    upstream: Upstream, path: str, model: str, expected: dict[str, Any] | None
) -> None:
    if expected is None:
        expected = _not_accessible(model, path)
    body = {"model": model, "messages": _HI, "input": "hi", "max_tokens": 10}
    response, answer = await _post(upstream, path, body)
    assert response.code == 400
    assert json.loads(answer) == expected
    (received,) = upstream.fake.received
    assert (received.path, received.status) == (path, 400)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ("unsupported", _not_accessible("gpt-5.4", "/chat/completions")),
        (
            "model-not-supported",
            {
                "error": {
                    "message": _not_accessible("gpt-5.4", "/chat/completions")["error"]["message"],
                    "code": "model_not_supported",
                    "type": "invalid_request_error",
                }
            },
        ),
        (
            "responses-api",
            {
                "error": {
                    "message": "model gpt-5.4 does not support Responses API.",
                    "code": "unsupported_api_for_model",
                    "type": "invalid_request_error",
                }
            },
        ),
    ],
)
@pytest_twisted.ensureDeferred
async def test_the_refusal_body_is_chosen_per_request(
    upstream: Upstream, shape: str, expected: dict[str, Any]
) -> None:
    response, answer = await _post(
        upstream, "/chat/completions", {"model": "gpt-5.4", "messages": _HI}, refusal=shape
    )
    assert response.code == 400
    assert json.loads(answer) == expected


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/chat/completions", "gpt-4o"),
        ("/chat/completions", "gemini-2.5-pro"),
        ("/chat/completions", "claude-sonnet-4.6"),
        ("/chat/completions", "gpt-5.2"),
        ("/responses", "gpt-5.2"),
        ("/responses", "gpt-5.4"),
        ("/v1/messages", "claude-sonnet-4.6"),
        ("/v1/messages", "claude-sonnet-4"),
        # Ids the catalog does not know are served, as before 2026.
        ("/chat/completions", "some-model-of-2025"),
        ("/responses", "some-model-of-2025"),
        ("/v1/messages", "claude-haiku-9"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_a_listed_or_unknown_pair_is_served(
    upstream: Upstream, path: str, model: str
) -> None:
    body = {"model": model, "messages": _HI, "input": "hi", "max_tokens": 10}
    response, _ = await _post(upstream, path, body)
    assert response.code == 200
    assert upstream.fake.received[-1].status == 200


@pytest_twisted.ensureDeferred
async def test_reasoning_effort_is_refused_for_models_that_declare_none(
    upstream: Upstream,
) -> None:
    for model, code in (("gpt-4.1", 400), ("gpt-5.2", 200), ("some-model-of-2025", 200)):
        body = {"model": model, "messages": _HI, "reasoning_effort": "high"}
        response, answer = await _post(upstream, "/chat/completions", body)
        assert response.code == code, model
        if code == 400:
            assert json.loads(answer) == {
                "error": {
                    "message": "Unrecognized request argument supplied: reasoning_effort",
                    "code": "invalid_request_body",
                }
            }


# Responses --------------------------------------------------------------------

_TEXT_ITEM = [
    "response.output_item.added",
    "response.content_part.added",
    *["response.output_text.delta"] * 5,
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]
_CALL_ITEM = [
    "response.output_item.added",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
]


@pytest_twisted.ensureDeferred
async def test_responses_stream_tells_reasoning_then_text_then_completes(
    upstream: Upstream,
) -> None:
    body = {
        "model": "gpt-5.4",
        "input": [{"type": "message", "role": "user", "content": "hi"}],
        "stream": True,
        "include": ["reasoning.encrypted_content"],
    }
    response, answer = await _post(upstream, "/responses", body)
    assert response.code == 200
    events = _events(answer)
    names = [name for name, _ in events]
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.output_item.done",
        *_TEXT_ITEM,
        "response.completed",
    ]
    assert all(data["type"] == name for name, data in events)
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    reasoning_added, reasoning_done = events[2][1]["item"], events[3][1]["item"]
    assert reasoning_added["type"] == "reasoning" and "encrypted_content" not in reasoning_added
    assert reasoning_done["encrypted_content"] == encrypted_reasoning("gpt-5.4", "rs_fake")
    deltas = [data["delta"] for name, data in events if name == "response.output_text.delta"]
    assert "".join(deltas) == chat_stream_text()
    completed = events[-1][1]
    assert completed["response"]["status"] == "completed"
    assert [item["type"] for item in completed["response"]["output"]] == ["reasoning", "message"]
    usage = completed["response"]["usage"]
    assert usage["input_tokens_details"]["cached_tokens"] == 2
    assert usage["output_tokens_details"]["reasoning_tokens"] == 8
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert completed["copilot_usage"]["total_nano_aiu"] > 0
    assert {d["token_type"] for d in completed["copilot_usage"]["token_details"]} >= {
        "input",
        "output",
    }


@pytest_twisted.ensureDeferred
async def test_responses_stream_makes_parallel_function_calls(upstream: Upstream) -> None:
    body = {"model": "gpt-5.2", "input": "weather?", "stream": True, "tools": [_WEATHER]}
    _, answer = await _post(upstream, "/responses", body, script="parallel-tools")
    events = _events(answer)
    names = [name for name, _ in events]
    text_item = [n for n in _TEXT_ITEM if n != "response.output_text.delta"]
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.output_item.done",
        *text_item[:2],
        "response.output_text.delta",
        *text_item[2:],
        *_CALL_ITEM,
        *_CALL_ITEM,
        "response.completed",
    ]
    added = [d for n, d in events if n == "response.output_item.added"][-2:]
    assert [(d["output_index"], d["item"]["arguments"]) for d in added] == [(2, ""), (3, "")]
    assert added[0]["item"]["call_id"] != added[1]["item"]["call_id"]
    assert {d["item"]["name"] for d in added} == {"get_weather"}
    done = [d for n, d in events if n == "response.function_call_arguments.done"]
    assert [json.loads(d["arguments"]) for d in done] == [{"city": "Paris"}, {"city": "Tokyo"}]
    pieces = [d["delta"] for n, d in events if n == "response.function_call_arguments.delta"]
    assert "".join(pieces[:2]) == done[0]["arguments"]


@pytest.mark.parametrize(
    ("terminal", "last"),
    [
        ("incomplete", "response.incomplete"),
        ("failed", "response.failed"),
        ("error", "error"),
        ("none", "response.output_item.done"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_responses_stream_ends_as_asked(
    upstream: Upstream, terminal: str, last: str
) -> None:
    body = {"model": "gpt-5.4", "input": "hi", "stream": True}
    response, answer = await _post(upstream, "/responses", body, terminal=terminal)
    assert response.code == 200
    name, data = _events(answer)[-1]
    assert name == last
    if terminal == "incomplete":
        assert data["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
        assert "copilot_usage" in data
    if terminal == "failed":
        assert data["response"]["error"]["code"] == "server_error"


@pytest_twisted.ensureDeferred
async def test_responses_answer_carries_items_usage_and_copilot_usage(
    upstream: Upstream,
) -> None:
    _, answer = await _post(upstream, "/responses", {"model": "gpt-5.4", "input": "hi"})
    body = json.loads(answer)
    assert (body["object"], body["status"]) == ("response", "completed")
    reasoning, message = body["output"]
    assert reasoning["type"] == "reasoning" and "encrypted_content" not in reasoning
    assert message["content"][0] == {
        "type": "output_text",
        "text": "Hello from the fake.",
        "annotations": [],
    }
    assert body["usage"]["input_tokens_details"] == {"cached_tokens": 2}
    assert "total_nano_aiu" in body["copilot_usage"]
    # Tools asked for: a call; their result given back: an answer.
    asked = {"model": "gpt-5.4", "input": "weather in Paris?", "tools": [_WEATHER]}
    _, answer = await _post(upstream, "/responses", asked)
    call = json.loads(answer)["output"][-1]
    assert (call["type"], call["name"], json.loads(call["arguments"])) == (
        "function_call",
        "get_weather",
        {"city": "Paris"},
    )
    answered = {
        **asked,
        "input": [
            {"type": "message", "role": "user", "content": "weather in Paris?"},
            {**call, "status": "completed"},
            {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"},
        ],
    }
    _, answer = await _post(upstream, "/responses", answered)
    assert [item["type"] for item in json.loads(answer)["output"]] == ["reasoning", "message"]


# Native Messages ----------------------------------------------------------------


_THINKING = {"type": "enabled", "budget_tokens": 1024}


@pytest_twisted.ensureDeferred
async def test_native_stream_thinks_with_a_signature_then_uses_a_tool(
    upstream: Upstream,
) -> None:
    body = {
        "model": "claude-sonnet-4.6",
        "max_tokens": 2048,
        "stream": True,
        "thinking": _THINKING,
        "tools": [_NATIVE_WEATHER],
        "messages": [{"role": "user", "content": "weather in Paris?"}],
    }
    response, answer = await _post(upstream, "/v1/messages", body)
    assert response.code == 200
    events = _events(answer)
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    deltas = [d["delta"] for n, d in events if n == "content_block_delta"]
    kinds = [d["type"] for d in deltas]
    assert kinds == [
        "thinking_delta",
        "thinking_delta",
        "signature_delta",
        "text_delta",
        "input_json_delta",
        "input_json_delta",
    ]
    thinking = "".join(d["thinking"] for d in deltas if d["type"] == "thinking_delta")
    assert deltas[2]["signature"] == thinking_signature(thinking)
    starts = [d["content_block"]["type"] for n, d in events if n == "content_block_start"]
    assert starts == ["thinking", "text", "tool_use"]
    arguments = "".join(d["partial_json"] for d in deltas if d["type"] == "input_json_delta")
    assert json.loads(arguments) == {"city": "Paris"}
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "tool_use"
    assert final["usage"]["output_tokens_details"]["thinking_tokens"] > 0
    assert final["copilot_usage"]["total_nano_aiu"] > 0


@pytest_twisted.ensureDeferred
async def test_native_stream_without_tools_or_thinking_tells_its_deltas(
    upstream: Upstream,
) -> None:
    body = {"model": "claude-sonnet-4", "max_tokens": 10, "stream": True, "messages": _HI}
    _, answer = await _post(upstream, "/v1/messages", body, events="3")
    events = _events(answer)
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == native_stream_text(3)
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert events[-2][1]["usage"]["output_tokens"] == 3


def _replay(signature: str, thinking: str = "Pondering.") -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4.6",
        "max_tokens": 2048,
        "thinking": _THINKING,
        "tools": [_NATIVE_WEATHER],
        "messages": [
            {"role": "user", "content": "weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": thinking, "signature": signature},
                    {"type": "tool_use", "id": "toolu_w", "name": "get_weather", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_w", "content": "sunny"}],
            },
        ],
    }


@pytest_twisted.ensureDeferred
async def test_native_replay_with_the_signature_issued_is_answered(upstream: Upstream) -> None:
    response, answer = await _post(
        upstream, "/v1/messages", _replay(thinking_signature("Pondering."))
    )
    assert response.code == 200
    message = json.loads(answer)
    assert [block["type"] for block in message["content"]] == ["thinking", "text"]
    assert message["stop_reason"] == "end_turn"
    assert "total_nano_aiu" in message["copilot_usage"]


@pytest.mark.parametrize(
    "replayed",
    [
        _replay("sig-from-another-account"),
        _replay(thinking_signature("Pondering."), thinking="Pondered otherwise."),
        _replay(""),
    ],
)
@pytest_twisted.ensureDeferred
async def test_native_replay_with_a_foreign_signature_is_refused(
    upstream: Upstream, replayed: dict[str, Any]
) -> None:
    response, answer = await _post(upstream, "/v1/messages", replayed)
    assert response.code == 400
    assert json.loads(answer) == {
        "error": {
            "message": "messages.1.content.0: Invalid signature in thinking block",
            "code": "invalid_request_body",
        }
    }
    assert upstream.fake.received[-1].status == 400


@pytest_twisted.ensureDeferred
async def test_native_prefill_is_refused(upstream: Upstream) -> None:
    body = {
        "model": "claude-sonnet-4.6",
        "max_tokens": 10,
        "messages": [*_HI, {"role": "assistant", "content": "The answer is"}],
    }
    response, answer = await _post(upstream, "/v1/messages", body)
    assert response.code == 400
    assert json.loads(answer)["error"]["code"] == "invalid_request_body"


# Chat Completions and quota -------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_chat_answers_carry_openai_usage_and_copilot_usage(upstream: Upstream) -> None:
    _, answer = await _post(upstream, "/chat/completions", {"model": "gpt-4o", "messages": _HI})
    body = json.loads(answer)
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    assert body["copilot_usage"]["total_nano_aiu"] == 0
    stream = {
        "model": "gemini-3.1-pro-preview",
        "messages": _HI,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    _, answer = await _post(upstream, "/chat/completions", stream)
    chunks = [json.loads(f[6:]) for f in answer.split(b"\n\n") if f and f != b"data: [DONE]"]
    finishing = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishing[0]["copilot_usage"]["total_nano_aiu"] > 0
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5


@pytest_twisted.ensureDeferred
async def test_every_answer_carries_quota_headers_that_fall_per_call(
    upstream: Upstream,
) -> None:
    quota_names = (
        "x-quota-snapshot-premium_interactions",
        "x-quota-snapshot-chat",
        "x-usage-ratelimit-session",
        "x-usage-ratelimit-weekly",
    )
    seen: list[dict[str, dict[str, str]]] = []
    request_ids = set()
    for _ in range(2):
        response, _ = await _post(
            upstream, "/chat/completions", {"model": "gpt-4o", "messages": _HI}
        )
        assert response.code == 200
        quota = {}
        for name in quota_names:
            value = _header(response, name)
            assert value is not None and value.startswith("ent=0&ov=0.0&ovPerm=false&rem="), name
            assert "&rst=" in value and "%3A" in value, value
            quota[name] = parse_quota(value)
        seen.append(quota)
        request_ids.add(_header(response, "x-request-id"))
        assert _header(response, "x-github-request-id")
    first, second = seen
    for name in quota_names:
        assert float(second[name]["rem"]) < float(first[name]["rem"]), name
        assert first[name]["rst"].endswith("Z")
    assert len(request_ids) == 2
    response, _ = await fetch(upstream.url + "/models", headers=_COPILOT)
    assert _header(response, "x-usage-ratelimit-session") is not None
