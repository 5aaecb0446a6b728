"""
The fake Copilot API adds up, per model, the usage its answers reported:
what a usage ledger in front of it must come to.
"""

from __future__ import annotations

import json
from typing import Any

import pytest_twisted

from copilot_proxy.testing.fake_upstream import ACCEPTED_TOKEN, UsageTotals

from .._helpers import Upstream, fetch, send, timeout

_COPILOT = {
    "authorization": f"Bearer {ACCEPTED_TOKEN}",
    "copilot-integration-id": "vscode-chat",
    "editor-version": "vscode/1.124.2",
    "editor-plugin-version": "copilot-chat/0.52.0",
    "content-type": "application/json",
}
_HI = [{"role": "user", "content": "hi"}]

JSON = dict[str, Any]


async def _post(upstream: Upstream, path: str, body: JSON, **fake: str) -> bytes:
    headers = {**_COPILOT, **{f"x-fake-{k}": v for k, v in fake.items()}}
    response, answer = await fetch(
        upstream.url + path, b"POST", headers, json.dumps(body).encode()
    )
    assert response.code == 200, answer
    return answer


def _data(answer: bytes) -> list[JSON]:
    """The JSON data of each server-sent event."""
    found = []
    for line in answer.splitlines():
        if line.startswith(b"data: {"):
            found.append(json.loads(line[len(b"data: ") :]))
    return found


@pytest_twisted.ensureDeferred
async def test_totals_add_up_what_each_answer_reported(upstream: Upstream) -> None:
    # Chat Completions: a body, a stream with usage, a stream without.
    chat = json.loads(
        await _post(upstream, "/chat/completions", {"model": "gemini-2.5-pro", "messages": _HI})
    )
    streamed = {"model": "gemini-2.5-pro", "messages": _HI, "stream": True}
    with_usage = _data(
        await _post(
            upstream,
            "/chat/completions",
            {**streamed, "stream_options": {"include_usage": True}},
            events="7",
            split="1",
        )
    )
    without_usage = _data(await _post(upstream, "/chat/completions", streamed, events="3"))
    tools = _data(await _post(upstream, "/chat/completions", streamed, script="tools"))
    usages = [chat["usage"], with_usage[-1]["usage"], tools[-1]["usage"]]
    costs = [chat, with_usage[-2], without_usage[-1], tools[-1]]
    # The stream without usage still reports its tokens in its cost record.
    details = {
        d["token_type"]: d["token_count"]
        for d in without_usage[-1]["copilot_usage"]["token_details"]
    }
    assert upstream.fake.usage_totals["gemini-2.5-pro"] == UsageTotals(
        answers=4,
        input=sum(u["prompt_tokens"] for u in usages) + details["input"] + details["cache_read"],
        cached=sum(u["prompt_tokens_details"]["cached_tokens"] for u in usages)
        + details["cache_read"],
        output=sum(u["completion_tokens"] for u in usages) + details["output"],
        reasoning=0,
        nano_aiu=sum(c["copilot_usage"]["total_nano_aiu"] for c in costs),
    )

    # Responses: a body and a stream, each with reasoning.
    body = json.loads(await _post(upstream, "/responses", {"model": "gpt-5.4", "input": "hi"}))
    stream = _data(
        await _post(upstream, "/responses", {"model": "gpt-5.4", "stream": True}, split="1")
    )
    ends = [body, stream[-1]["response"]]
    assert stream[-1]["type"] == "response.completed"
    assert upstream.fake.usage_totals["gpt-5.4"] == UsageTotals(
        answers=2,
        input=sum(e["usage"]["input_tokens"] for e in ends),
        cached=sum(e["usage"]["input_tokens_details"]["cached_tokens"] for e in ends),
        output=sum(e["usage"]["output_tokens"] for e in ends),
        reasoning=sum(e["usage"]["output_tokens_details"]["reasoning_tokens"] for e in ends),
        nano_aiu=body["copilot_usage"]["total_nano_aiu"]
        + stream[-1]["copilot_usage"]["total_nano_aiu"],
    )

    # Messages: a body and a stream that thinks and calls a tool.
    thinking = {"type": "enabled", "budget_tokens": 2000}
    ask = {"model": "claude-sonnet-4.6", "max_tokens": 100, "messages": _HI}
    message = json.loads(await _post(upstream, "/v1/messages", ask))
    events = _data(
        await _post(
            upstream, "/v1/messages", {**ask, "stream": True, "thinking": thinking}, script="tools"
        )
    )
    start, delta = events[0]["message"]["usage"], events[-2]
    assert delta["type"] == "message_delta"
    assert upstream.fake.usage_totals["claude-sonnet-4.6"] == UsageTotals(
        answers=2,
        input=message["usage"]["input_tokens"]
        + message["usage"]["cache_read_input_tokens"]
        + start["input_tokens"]
        + start["cache_read_input_tokens"],
        cached=message["usage"]["cache_read_input_tokens"] + start["cache_read_input_tokens"],
        output=message["usage"]["output_tokens"] + delta["usage"]["output_tokens"],
        reasoning=delta["usage"]["output_tokens_details"]["thinking_tokens"],
        nano_aiu=message["copilot_usage"]["total_nano_aiu"]
        + delta["copilot_usage"]["total_nano_aiu"],
    )
    assert upstream.fake.usage_totals["claude-sonnet-4.6"].reasoning > 0
    assert all(t.nano_aiu > 0 for t in upstream.fake.usage_totals.values())


@pytest_twisted.ensureDeferred
async def test_answers_that_never_sent_their_usage_count_nothing(upstream: Upstream) -> None:
    streamed = {"model": "gpt-5.4", "stream": True}
    await _post(upstream, "/responses", streamed, terminal="error")
    await _post(upstream, "/responses", streamed, terminal="none")
    headers = {**_COPILOT, "x-fake-mode": "reset", "x-fake-events": "2", "x-fake-interval": "0.02"}
    chat = {"model": "gpt-5.2", "messages": _HI, "stream": True}
    _, reset = await send(
        upstream.url + "/chat/completions", b"POST", headers, json.dumps(chat).encode()
    )
    await timeout(reset.done)
    assert not reset.complete and reset.body.count(b"data: ") == 2
    refused = {**_COPILOT, "x-fake-status": "429"}
    response, _ = await fetch(
        upstream.url + "/chat/completions", b"POST", refused, json.dumps(chat).encode()
    )
    assert response.code == 429
    assert upstream.fake.usage_totals == {}
