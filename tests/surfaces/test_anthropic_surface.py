"""
The Anthropic surface end to end: the real Anthropic SDK and raw clients
against the real proxy and the fake Copilot API.
"""

from __future__ import annotations

import json
from typing import Any, cast

import anthropic
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import blockingCallFromThread

from copilot_proxy.settings import MessagesMode
from copilot_proxy.testing.fake_upstream import Received, native_events, thinking_signature
from copilot_proxy.wire import DEFAULT_HEADERS

from .._helpers import Proxy, Upstream, fetch, send, timeout, until
from .test_openai_surface import in_thread

MODEL = "claude-sonnet-4-20250514"


@pytest.fixture
def proxy(make_proxy: Any, upstream: Upstream) -> Proxy:
    # Most tests here prove the translation to Chat Completions: translate
    # mode keeps Claude models off native Messages, which the catalog lists.
    translating: Proxy = make_proxy(upstream.url, messages_mode=MessagesMode.TRANSLATE)
    return translating


def _client(proxy: Proxy) -> anthropic.Anthropic:
    # This SDK sends its key as a bearer token; older ones and Claude Code
    # send x-api-key, which must not reach the upstream either.
    return anthropic.Anthropic(
        base_url=proxy.url,
        api_key="sk-ant-ignored",
        default_headers={"x-api-key": "sk-ant-client-key"},
        max_retries=0,
        timeout=15,
    )


def _messages(**extra: Any) -> bytes:
    body = {"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    return json.dumps({**body, **extra}).encode()


@pytest_twisted.ensureDeferred
async def test_sdk_message_is_translated_both_ways(proxy: Proxy, upstream: Upstream) -> None:
    client = _client(proxy)
    message = await in_thread(
        lambda: client.messages.create(
            model=MODEL,
            max_tokens=100,
            system="Be brief.",
            stop_sequences=["END"],
            metadata={"user_id": "u1"},
            messages=[{"role": "user", "content": "Hello"}],
        )
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello from the fake."
    assert message.model == MODEL
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 4)
    received = upstream.fake.received[-1]
    assert received.path == "/chat/completions"
    sent = json.loads(received.body)
    assert sent["model"] == "claude-sonnet-4"
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
    ]
    assert sent["max_tokens"] == 100
    assert sent["stop"] == ["END"]
    assert "metadata" not in sent
    for name, value in DEFAULT_HEADERS:
        assert received.header(name) == value, name
    assert received.header("x-initiator") == "user"
    assert received.headers["authorization"] == ["Bearer fake-copilot-token"]
    assert "x-api-key" not in received.headers
    assert "anthropic-version" not in received.headers


@pytest_twisted.ensureDeferred
async def test_sdk_streaming_message_with_a_tool_call(proxy: Proxy, upstream: Upstream) -> None:
    client = _client(proxy)

    def run() -> tuple[list[str], Any]:
        with client.messages.stream(
            model=MODEL,
            max_tokens=100,
            tools=[
                {
                    "name": "get_weather",
                    "description": "Weather in a city",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                }
            ],
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            extra_headers={"x-fake-script": "tools"},
        ) as stream:
            kinds: list[str] = [event.type for event in stream]
            return kinds, stream.get_final_message()

    kinds, message = await in_thread(run)
    assert kinds[0] == "message_start"
    assert "content_block_delta" in kinds
    assert kinds[-1] == "message_stop"
    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert message.content[0].text == "Let me check."
    tool = message.content[1]
    assert (tool.id, tool.name, tool.input) == ("call_weather", "get_weather", {"city": "Paris"})
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 7)
    assert message.usage.cache_read_input_tokens == 2
    sent = json.loads(upstream.fake.received[-1].body)
    assert sent["stream"] is True
    assert sent["tools"][0]["function"]["name"] == "get_weather"


@pytest_twisted.ensureDeferred
async def test_tool_results_turn_is_sent_as_agent(proxy: Proxy, upstream: Upstream) -> None:
    client = _client(proxy)
    await in_thread(
        lambda: client.messages.create(
            model=MODEL,
            max_tokens=10,
            messages=[
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "call_w",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        }
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "call_w", "content": "sunny"}
                    ],
                },
            ],
        )
    )
    received = upstream.fake.received[-1]
    assert received.header("x-initiator") == "agent"
    assert json.loads(received.body)["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_w",
        "content": "sunny",
    }


@pytest_twisted.ensureDeferred
async def test_images_are_translated_and_flagged(proxy: Proxy, upstream: Upstream) -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
    }
    content = [{"type": "text", "text": "What is this?"}, image]
    await fetch(
        proxy.url + "/v1/messages",
        b"POST",
        {},
        _messages(messages=[{"role": "user", "content": content}]),
    )
    received = upstream.fake.received[-1]
    assert received.header("copilot-vision-request") == "true"
    assert json.loads(received.body)["messages"][0]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBO"},
    }


@pytest_twisted.ensureDeferred
async def test_translated_stream_gets_keepalives_between_events(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = make_proxy(upstream.url, sse_keepalive=0.1)
    _, body = await fetch(
        proxy.url + "/v1/messages",
        b"POST",
        {"x-fake-events": "2", "x-fake-interval": "0.5"},
        _messages(stream=True),
    )
    events = [e for e in body.split(b"\n\n") if e]
    assert b": keep-alive" in events
    names = [e.split(b"\n")[0] for e in events if e != b": keep-alive"]
    assert all(n.startswith(b"event: ") for n in names), names
    assert names[-1] == b"event: message_stop"


@pytest_twisted.ensureDeferred
async def test_sdk_count_tokens_is_answered_by_the_proxy(proxy: Proxy, upstream: Upstream) -> None:
    client = _client(proxy)
    before = len(upstream.fake.received)
    count = await in_thread(
        lambda: client.messages.count_tokens(
            model=MODEL, messages=[{"role": "user", "content": "x" * 400}]
        )
    )
    assert count.input_tokens == 100 + 4
    assert len(upstream.fake.received) == before


@pytest_twisted.ensureDeferred
async def test_first_text_delta_arrives_before_upstream_finishes(
    proxy: Proxy, upstream: Upstream
) -> None:
    response, collector = await send(
        proxy.url + "/v1/messages",
        b"POST",
        {"content-type": "application/json", "x-fake-events": "20", "x-fake-interval": "0.1"},
        _messages(stream=True),
    )
    assert response.code == 200
    assert response.headers.getRawHeaders(b"content-type") == [b"text/event-stream; charset=utf-8"]
    await until(lambda: b"text_delta" in collector.body)
    received = upstream.fake.received[-1]
    assert not received.finished
    assert received.events_sent < 20
    await timeout(collector.done, 15)
    assert collector.complete
    assert collector.body.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')


@pytest_twisted.ensureDeferred
async def test_client_leaving_a_translated_stream_aborts_upstream(
    proxy: Proxy, upstream: Upstream
) -> None:
    response, collector = await send(
        proxy.url + "/v1/messages",
        b"POST",
        {"x-fake-events": "1000", "x-fake-interval": "0.02"},
        _messages(stream=True),
    )
    await until(lambda: b"text_delta" in collector.body)
    received = upstream.fake.received[-1]
    assert collector.transport is not None
    collector.transport.loseConnection()
    await timeout(received.connection_lost, 5)
    assert received.events_sent < 1000
    await until(lambda: len(proxy.service._inflight) == 0)


@pytest_twisted.ensureDeferred
async def test_unknown_model_gets_anthropic_error_listing_known_ids(
    proxy: Proxy, upstream: Upstream
) -> None:
    response, body = await fetch(
        proxy.url + "/v1/messages", b"POST", {}, _messages(model="claude-haiku-9-20990101")
    )
    assert response.code == 404
    error = json.loads(body)
    assert error["type"] == "error"
    assert error["error"]["type"] == "not_found_error"
    assert "claude-sonnet-4" in error["error"]["message"]
    assert "gpt-4o" in error["error"]["message"]
    assert all(r.path != "/chat/completions" for r in upstream.fake.received)


@pytest_twisted.ensureDeferred
async def test_model_map_option_serves_other_names(make_proxy: Any, upstream: Upstream) -> None:
    proxy = make_proxy(upstream.url, model_map=(("claude-haiku-9", "gpt-4.1"),))
    response, _ = await fetch(
        proxy.url + "/v1/messages", b"POST", {}, _messages(model="claude-haiku-9")
    )
    assert response.code == 200
    assert json.loads(upstream.fake.received[-1].body)["model"] == "gpt-4.1"


@pytest_twisted.ensureDeferred
async def test_model_list_is_fetched_once_and_cached(proxy: Proxy, upstream: Upstream) -> None:
    for _ in range(3):
        await fetch(proxy.url + "/v1/messages", b"POST", {}, _messages())
    assert [r.path for r in upstream.fake.received].count("/models") == 1


@pytest_twisted.ensureDeferred
async def test_upstream_errors_use_the_anthropic_shape(proxy: Proxy, upstream: Upstream) -> None:
    for status, kind in (
        (429, "rate_limit_error"),
        (401, "authentication_error"),
        (500, "api_error"),
    ):
        response, body = await fetch(
            proxy.url + "/v1/messages", b"POST", {"x-fake-status": str(status)}, _messages()
        )
        assert response.code == status
        assert json.loads(body) == {
            "type": "error",
            "error": {"type": kind, "message": f"fake error {status}"},
        }
    response, body = await fetch(
        proxy.url + "/v1/messages", b"POST", {"x-fake-status": "466"}, _messages()
    )
    assert "--header 'editor-version:" in json.loads(body)["error"]["message"]


@pytest_twisted.ensureDeferred
async def test_proxy_errors_use_the_anthropic_shape(make_proxy: Any, upstream: Upstream) -> None:
    proxy = make_proxy(upstream.url)
    response, body = await fetch(proxy.url + "/v1/messages", b"POST", {}, b"not json")
    assert response.code == 400
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
    response, body = await fetch(proxy.url + "/v1/messages/count_tokens", b"POST", {}, b"[]")
    assert response.code == 400
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
    unreachable = make_proxy("http://127.0.0.1:1")
    response, body = await fetch(unreachable.url + "/v1/messages", b"POST", {}, _messages())
    assert response.code == 502
    assert json.loads(body)["type"] == "error"


@pytest_twisted.ensureDeferred
async def test_native_mode_forwards_claude_untranslated(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = make_proxy(upstream.url, messages_mode=MessagesMode.NATIVE)
    client = _client(proxy)
    message = await in_thread(
        lambda: client.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello natively."
    received = upstream.fake.received[-1]
    assert received.path == "/v1/messages"
    sent = json.loads(received.body)
    assert sent["model"] == "claude-sonnet-4"
    assert sent["messages"] == [{"role": "user", "content": "hi"}]
    assert received.header("anthropic-version") is not None
    # Other models are still translated.
    await in_thread(
        lambda: client.messages.create(
            model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    )
    assert upstream.fake.received[-1].path == "/chat/completions"


def _native_exchange(upstream: Upstream) -> Received:
    return [r for r in upstream.fake.received if r.path == "/v1/messages"][-1]


@pytest_twisted.ensureDeferred
async def test_native_stream_reaches_the_sdk_incrementally_and_whole(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = make_proxy(upstream.url, messages_mode=MessagesMode.NATIVE)
    client = _client(proxy)
    deltas = 20

    def upstream_state() -> tuple[bool, int]:
        received = _native_exchange(upstream)
        return received.finished, received.events_sent

    def run() -> tuple[tuple[bool, int], list[str], Any]:
        at_first_delta: tuple[bool, int] | None = None
        with client.messages.stream(
            model=MODEL,
            max_tokens=100,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={
                "x-fake-events": str(deltas),
                "x-fake-interval": "0.05",
            },
        ) as stream:
            kinds: list[str] = []
            for event in stream:
                kinds.append(event.type)
                if at_first_delta is None and event.type == "content_block_delta":
                    at_first_delta = blockingCallFromThread(
                        cast(IReactorFromThreads, reactor), upstream_state
                    )
            message = stream.get_final_message()
        assert at_first_delta is not None
        return at_first_delta, kinds, message

    (finished, sent), kinds, message = await in_thread(run)
    # The first delta was read while the fake still had events to send.
    assert not finished
    assert sent < len(native_events({}, deltas))
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    assert message.content[0].text == "".join(f"tok{i} " for i in range(deltas))
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == deltas
    received = _native_exchange(upstream)
    assert received.finished
    assert json.loads(received.body)["model"] == "claude-sonnet-4"
    for name, value in DEFAULT_HEADERS:
        assert received.header(name) == value, name
    assert received.headers["authorization"] == ["Bearer fake-copilot-token"]
    assert received.header("x-initiator") == "user"
    assert received.header("anthropic-version") is not None
    assert "x-api-key" not in received.headers
    assert all("sk-ant-" not in value for values in received.headers.values() for value in values)
    assert "anthropic-beta" not in received.headers


@pytest_twisted.ensureDeferred
async def test_native_thinking_is_forwarded_with_the_interleaved_thinking_beta(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = make_proxy(upstream.url, messages_mode=MessagesMode.NATIVE)
    client = _client(proxy)
    thinking: anthropic.types.ThinkingConfigEnabledParam = {
        "type": "enabled",
        "budget_tokens": 1024,
    }

    def run(**extra: Any) -> Any:
        with client.messages.stream(
            model=MODEL,
            max_tokens=2048,
            thinking=thinking,
            messages=[{"role": "user", "content": "hi"}],
            **extra,
        ) as stream:
            return stream.get_final_message()

    message = await in_thread(run)
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "Pondering."
    assert message.content[0].signature == thinking_signature("Pondering.")
    received = _native_exchange(upstream)
    assert json.loads(received.body)["thinking"] == thinking
    assert received.headers["anthropic-beta"] == ["interleaved-thinking-2025-05-14"]
    # A client that names its own betas keeps exactly those.
    await in_thread(lambda: run(extra_headers={"anthropic-beta": "some-beta-2099-01-01"}))
    assert _native_exchange(upstream).headers["anthropic-beta"] == ["some-beta-2099-01-01"]


@pytest_twisted.ensureDeferred
async def test_translate_mode_drops_thinking_and_answers_without_it(
    proxy: Proxy, upstream: Upstream
) -> None:
    client = _client(proxy)
    message = await in_thread(
        lambda: client.messages.create(
            model=MODEL,
            max_tokens=2048,
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=[{"role": "user", "content": "hi"}],
        )
    )
    assert [block.type for block in message.content] == ["text"]
    received = upstream.fake.received[-1]
    assert received.path == "/chat/completions"
    assert "thinking" not in json.loads(received.body)
    assert "anthropic-beta" not in received.headers


@pytest_twisted.ensureDeferred
async def test_native_stream_gets_keepalives_between_events(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = make_proxy(upstream.url, messages_mode=MessagesMode.NATIVE, sse_keepalive=0.1)
    _, body = await fetch(
        proxy.url + "/v1/messages",
        b"POST",
        {"x-fake-events": "1", "x-fake-interval": "0.3"},
        _messages(stream=True),
    )
    events = [e for e in body.split(b"\n\n") if e]
    assert b": keep-alive" in events
    names = [e.split(b"\n")[0] for e in events if e != b": keep-alive"]
    assert all(n.startswith(b"event: ") for n in names), names
    assert names[-1] == b"event: message_stop"


@pytest_twisted.ensureDeferred
async def test_client_leaving_a_native_stream_aborts_upstream(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = make_proxy(upstream.url, messages_mode=MessagesMode.NATIVE)
    response, collector = await send(
        proxy.url + "/v1/messages",
        b"POST",
        {"x-fake-events": "1000", "x-fake-interval": "0.02"},
        _messages(stream=True),
    )
    await until(lambda: b"text_delta" in collector.body)
    received = _native_exchange(upstream)
    assert collector.transport is not None
    collector.transport.loseConnection()
    await timeout(received.connection_lost, 5)
    assert not received.finished
    assert received.events_sent < 1000
    await until(lambda: len(proxy.service._inflight) == 0)
