"""
Every client surface reaches every kind of model, with the real SDKs against
the 2026 fake: the fake's record shows only endpoints each model lists.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
import pytest_twisted
from openai.types.chat import ChatCompletionMessageFunctionToolCall

from copilot_proxy.testing.fake_upstream import endpoints_of

from .._helpers import Proxy, Upstream, fetch
from .test_openai_surface import in_thread

#: A model of each kind the 2026 catalog has.
MODELS = ["claude-sonnet-4.6", "gpt-5.4", "gemini-3.1-pro-preview", "gemini-2.5-pro"]

_WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def _openai(proxy: Proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0, timeout=15)


def _anthropic(proxy: Proxy) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0, timeout=15)


def _asked_on(upstream: Upstream, model: str) -> set[str]:
    """The endpoints the fake was asked, for C{model}, answered or not."""
    paths = set()
    for received in upstream.fake.received:
        if received.path == "/models" or not received.body:
            continue
        try:
            body = json.loads(received.body)
        except ValueError:
            continue
        if isinstance(body, dict) and body.get("model") == model:
            paths.add(received.path)
    return paths


def _listed(model: str) -> set[str]:
    listed = endpoints_of(model)
    return {"/chat/completions"} if listed is None else set(listed)


def _only_listed(upstream: Upstream, model: str) -> None:
    asked = _asked_on(upstream, model)
    assert asked, "the model was never asked upstream"
    assert asked <= _listed(model), (model, asked)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
@pytest_twisted.ensureDeferred
async def test_chat_completions_reach_every_model(
    proxy: Proxy, upstream: Upstream, model: str, stream: bool
) -> None:
    client = _openai(proxy)
    messages: Any = [{"role": "user", "content": "hi"}]

    def run() -> str:
        if not stream:
            answer = client.chat.completions.create(model=model, messages=messages)
            return answer.choices[0].message.content or ""
        chunks = client.chat.completions.create(model=model, messages=messages, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    assert await in_thread(run)
    _only_listed(upstream, model)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
@pytest_twisted.ensureDeferred
async def test_responses_reach_every_model(
    proxy: Proxy, upstream: Upstream, model: str, stream: bool
) -> None:
    client = _openai(proxy)

    def run() -> str:
        if not stream:
            return client.responses.create(model=model, input="hi").output_text
        text = []
        with client.responses.stream(model=model, input="hi") as events:
            for event in events:
                if event.type == "response.output_text.delta":
                    text.append(event.delta)
            final = events.get_final_response()
        assert final.status == "completed"
        return "".join(text)

    assert await in_thread(run)
    _only_listed(upstream, model)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
@pytest_twisted.ensureDeferred
async def test_messages_reach_every_model(
    proxy: Proxy, upstream: Upstream, model: str, stream: bool
) -> None:
    client = _anthropic(proxy)
    messages: Any = [{"role": "user", "content": "hi"}]

    def run() -> str:
        if not stream:
            message = client.messages.create(model=model, max_tokens=200, messages=messages)
            return "".join(b.text for b in message.content if b.type == "text")
        with client.messages.stream(model=model, max_tokens=200, messages=messages) as events:
            text = "".join(events.text_stream)
            final = events.get_final_message()
        assert final.stop_reason == "end_turn"
        return text

    assert await in_thread(run)
    _only_listed(upstream, model)


@pytest_twisted.ensureDeferred
async def test_a_tool_round_trip_from_chat_through_responses(
    proxy: Proxy, upstream: Upstream
) -> None:
    client = _openai(proxy)
    tools: Any = [{"type": "function", "function": _WEATHER}]

    def run() -> str:
        messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
        first = client.chat.completions.create(model="gpt-5.4", messages=messages, tools=tools)
        calls = first.choices[0].message.tool_calls or []
        assert first.choices[0].finish_reason == "tool_calls"
        assert calls and isinstance(calls[0], ChatCompletionMessageFunctionToolCall)
        assert calls[0].function.name == "get_weather"
        json.loads(calls[0].function.arguments)
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": calls[0].id, "content": "sunny"})
        second = client.chat.completions.create(model="gpt-5.4", messages=messages, tools=tools)
        return second.choices[0].message.content or ""

    assert await in_thread(run)
    _only_listed(upstream, "gpt-5.4")


@pytest_twisted.ensureDeferred
async def test_a_tool_round_trip_from_messages_through_responses(
    proxy: Proxy, upstream: Upstream
) -> None:
    client = _anthropic(proxy)
    tools: Any = [
        {"name": "get_weather", "description": "x", "input_schema": _WEATHER["parameters"]}
    ]

    def run() -> str:
        messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
        first = client.messages.create(
            model="gpt-5.4", max_tokens=200, messages=messages, tools=tools
        )
        assert first.stop_reason == "tool_use"
        use = next(b for b in first.content if b.type == "tool_use")
        assert use.name == "get_weather"
        messages.append({"role": "assistant", "content": [b.model_dump() for b in first.content]})
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}],
            }
        )
        second = client.messages.create(
            model="gpt-5.4", max_tokens=200, messages=messages, tools=tools
        )
        return "".join(b.text for b in second.content if b.type == "text")

    assert await in_thread(run)
    _only_listed(upstream, "gpt-5.4")


@pytest_twisted.ensureDeferred
async def test_a_tool_round_trip_from_responses_through_chat(
    proxy: Proxy, upstream: Upstream
) -> None:
    client = _openai(proxy)
    tools: Any = [{"type": "function", **_WEATHER}]

    def run() -> str:
        # The fake's chat completions call tools when its script says so (and
        # then only when streaming).
        with client.responses.stream(
            model="gemini-3.1-pro-preview",
            input="Weather in Paris?",
            tools=tools,
            extra_headers={"x-fake-script": "tools"},
        ) as events:
            first = events.get_final_response()
        call = next(item for item in first.output if item.type == "function_call")
        assert call.name
        follow: list[Any] = [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ]
        second = client.responses.create(model="gemini-3.1-pro-preview", input=follow, tools=tools)
        return second.output_text

    assert await in_thread(run)
    _only_listed(upstream, "gemini-3.1-pro-preview")


@pytest_twisted.ensureDeferred
async def test_thinking_with_its_signature_reaches_an_anthropic_client_from_claude(
    proxy: Proxy, upstream: Upstream
) -> None:
    client = _anthropic(proxy)

    def run() -> Any:
        return client.messages.create(
            model="claude-sonnet-4.6",
            max_tokens=4000,
            thinking={"type": "enabled", "budget_tokens": 2000},
            messages=[{"role": "user", "content": "Think, then say hi."}],
        )

    message = await in_thread(run)
    thinking = [b for b in message.content if b.type == "thinking"]
    assert thinking and thinking[0].signature
    assert _asked_on(upstream, "claude-sonnet-4.6") == {"/v1/messages"}


@pytest_twisted.ensureDeferred
async def test_a_model_no_endpoint_serves_gets_a_400_naming_its_endpoints(
    proxy: Proxy, upstream: Upstream
) -> None:
    response, body = await fetch(
        proxy.url + "/v1/chat/completions",
        b"POST",
        {"content-type": "application/json"},
        json.dumps({"model": "text-embedding-3-small", "messages": []}).encode(),
    )
    assert response.code == 400
    assert json.loads(body)["error"]["code"] == "unsupported_api_for_model"
