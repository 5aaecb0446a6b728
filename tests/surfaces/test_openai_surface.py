"""
The OpenAI surface end to end: Copilot headers, the /v1 alias, the 466 hint,
SSE keep-alives, and the real OpenAI SDK as the client.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import openai
import pytest_twisted
from twisted.internet.threads import deferToThread

from copilot_proxy.wire import DEFAULT_HEADERS

from .._helpers import Proxy, Upstream, fetch, send, stream_request, timeout

T = TypeVar("T")


async def in_thread(call: Callable[[], T], seconds: float = 20.0) -> T:
    """Run a blocking SDK call off the reactor thread, so the reactor keeps serving."""
    result: T = await timeout(deferToThread(call), seconds)
    return result


def _chat(content: Any, **extra: Any) -> bytes:
    return json.dumps(
        {"model": "gpt-4o", "messages": [{"role": "user", "content": content}], **extra}
    ).encode()


@pytest_twisted.ensureDeferred
async def test_copilot_headers_reach_upstream(proxy: Proxy, upstream: Upstream) -> None:
    await fetch(proxy.url + "/chat/completions", b"POST", {}, _chat("hi"))
    await fetch(proxy.url + "/chat/completions", b"POST", {}, _chat("hi"))
    first, second = upstream.fake.received[-2:]
    for name, value in DEFAULT_HEADERS:
        assert first.header(name) == value, name
    assert first.header("x-initiator") == "user"
    assert first.header("copilot-vision-request") is None
    assert first.header("x-request-id") != second.header("x-request-id")


@pytest_twisted.ensureDeferred
async def test_agent_turns_and_images_are_flagged(proxy: Proxy, upstream: Upstream) -> None:
    body = json.dumps(
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                {"role": "assistant", "tool_calls": []},
                {"role": "tool", "tool_call_id": "c1", "content": "42"},
            ],
        }
    ).encode()
    await fetch(proxy.url + "/chat/completions", b"POST", {}, body)
    received = upstream.fake.received[-1]
    assert received.header("x-initiator") == "agent"
    assert received.header("copilot-vision-request") == "true"
    assert received.body == body, "the request body is forwarded untouched"


@pytest_twisted.ensureDeferred
async def test_header_option_overrides_default_and_client_wins_but_not_authorization(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = make_proxy(
        upstream.url,
        headers=(("editor-version", "vscode/7.7.7"), ("openai-intent", "conversation-panel")),
    )
    await fetch(
        proxy.url + "/chat/completions",
        b"POST",
        {"openai-intent": "mine", "authorization": "Bearer client", "x-initiator": "agent"},
        _chat("hi"),
    )
    received = upstream.fake.received[-1]
    assert received.header("editor-version") == "vscode/7.7.7"
    assert received.header("openai-intent") == "mine"
    assert received.header("x-initiator") == "agent"
    assert received.headers["authorization"] == ["Bearer fake-copilot-token"]


@pytest_twisted.ensureDeferred
async def test_dropping_a_required_header_is_refused_upstream(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = make_proxy(upstream.url, headers=(("editor-version", ""),))
    response, body = await fetch(proxy.url + "/chat/completions", b"POST", {}, _chat("hi"))
    assert response.code == 400
    assert b"editor-version" in body


@pytest_twisted.ensureDeferred
async def test_v1_alias_is_forwarded_without_v1(proxy: Proxy, upstream: Upstream) -> None:
    for path, expected in (
        ("/v1/chat/completions?a=1", ("/chat/completions", "a=1")),
        ("/v1/models", ("/models", "")),
        ("/v1/embeddings", ("/embeddings", "")),
        ("/v1/responses", ("/responses", "")),
        ("/v1/elsewhere", ("/v1/elsewhere", "")),
    ):
        body = _chat("hi")
        if path == "/v1/responses":
            # Routed by its model: one that lists /responses goes there.
            body = json.dumps({"model": "gpt-5.4", "input": "hi"}).encode()
        await fetch(proxy.url + path, b"POST", {}, body)
        received = upstream.fake.received[-1]
        assert (received.path, received.query) == expected, path


@pytest_twisted.ensureDeferred
async def test_stale_version_answer_names_the_option_to_set(
    proxy: Proxy, upstream: Upstream
) -> None:
    response, body = await fetch(
        proxy.url + "/chat/completions", b"POST", {"x-fake-status": "466"}, _chat("hi")
    )
    assert response.code == 466
    assert response.headers.getRawHeaders(b"content-type") == [b"application/json"]
    assert response.length == len(body)
    error = json.loads(body)["error"]
    assert "--header 'editor-version:" in error["message"]
    assert "fake error 466" in error["message"]
    assert error["code"] == "copilot_version_headers_stale"


def _events(body: bytes) -> list[bytes]:
    return [event for event in body.split(b"\n\n") if event]


@pytest_twisted.ensureDeferred
async def test_keepalive_fills_silences_between_events_only(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = make_proxy(upstream.url, sse_keepalive=0.1)
    # Every event arrives in two pieces 0.5 s apart: the silences fall both
    # inside and between events.
    headers, body = stream_request(events=3, interval=0.5, split=1)
    response, collector = await send(proxy.url + "/chat/completions", b"POST", headers, body)
    await timeout(collector.done, 15)
    assert collector.complete
    events = _events(collector.body)
    assert b": keep-alive" in events
    data = [e for e in events if e != b": keep-alive"]
    assert all(e.startswith(b"data: ") for e in data), data
    assert len(data) == 5
    assert data[-1] == b"data: [DONE]"
    # What the client gets without the comments is what upstream sent.
    assert b"".join(e + b"\n\n" for e in data) == b"".join(
        e + b"\n\n" for e in _events(collector.body.replace(b": keep-alive\n\n", b""))
    )


@pytest_twisted.ensureDeferred
async def test_no_keepalive_on_other_content_types(make_proxy: Any, upstream: Upstream) -> None:
    proxy = make_proxy(upstream.url, sse_keepalive=0.1)
    headers, body = stream_request(
        events=2, interval=0.6, **{"content-type": "application/x-ndjson"}
    )
    _, answer = await fetch(proxy.url + "/chat/completions", b"POST", headers, body)
    assert b"keep-alive" not in answer
    assert answer.count(b"data: ") == 4


@pytest_twisted.ensureDeferred
async def test_keepalives_do_not_hide_an_idle_upstream(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = make_proxy(upstream.url, sse_keepalive=0.1, idle_timeout=1.0)
    headers, body = stream_request(events=1, mode="stall")
    _, collector = await send(proxy.url + "/chat/completions", b"POST", headers, body)
    await timeout(collector.done, 10)
    assert not collector.complete
    assert b": keep-alive" in collector.body


# The real OpenAI SDK ------------------------------------------------------


def _client(proxy: Proxy) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=proxy.url + "/v1", api_key="sk-ignored", max_retries=0, timeout=15
    )


@pytest_twisted.ensureDeferred
async def test_openai_sdk_chat(proxy: Proxy, upstream: Upstream) -> None:
    client = _client(proxy)
    completion = await in_thread(
        lambda: client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    )
    assert completion.choices[0].message.content == "Hello from the fake."
    received = upstream.fake.received[-1]
    assert received.path == "/chat/completions"
    assert received.headers["authorization"] == ["Bearer fake-copilot-token"]
    assert received.header("copilot-integration-id") == "vscode-chat"


@pytest_twisted.ensureDeferred
async def test_openai_sdk_streaming_chat(proxy: Proxy, upstream: Upstream) -> None:
    client = _client(proxy)

    def run() -> list[str]:
        stream = client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            extra_headers={"x-fake-events": "4", "x-fake-bytes": "5"},
        )
        return [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]

    pieces = await in_thread(run)
    assert pieces[:4] == ["tok0 ", "tok1 ", "tok2 ", "tok3 "]


@pytest_twisted.ensureDeferred
async def test_openai_sdk_models_and_embeddings(proxy: Proxy, upstream: Upstream) -> None:
    client = _client(proxy)
    models = await in_thread(lambda: [m.id for m in client.models.list()])
    assert "gpt-4o" in models
    embedding = await in_thread(
        lambda: client.embeddings.create(
            model="text-embedding-3-small", input=["abc", "de"], encoding_format="float"
        )
    )
    assert [e.embedding for e in embedding.data] == [[0.25, -0.5, 3.0], [0.25, -0.5, 2.0]]
    assert upstream.fake.received[-1].path == "/embeddings"
