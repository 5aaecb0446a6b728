"""
Requests shaped as real coding agents send them (Claude Code 2.1, Codex CLI
0.171, seen through the proxy against the 2026 fake), each on a model that
makes the proxy translate.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
import pytest_twisted

from .._helpers import Proxy, Upstream
from .test_openai_surface import in_thread

#: Claude Code's C{metadata.user_id}: a JSON object of about 150 characters.
CLAUDE_CODE_USER_ID = json.dumps(
    {
        "device_id": "434d16ef6392bb0b4e2e56af005c83cb30cfbd35f7ec302a3f24086abf3898ff",
        "account_uuid": "",
        "session_id": "c3925dd7-d446-4f22-8b0b-9f412b93f3ac",
    },
    separators=(",", ":"),
)


def _anthropic(proxy: Proxy) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0, timeout=15)


def _sent_to_responses(upstream: Upstream) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in upstream.fake.received if r.path == "/responses"]


@pytest.mark.parametrize("stream", [False, True])
@pytest_twisted.ensureDeferred
async def test_claude_code_user_id_reaches_a_responses_only_model(
    proxy: Proxy, upstream: Upstream, stream: bool
) -> None:
    # Its user id went as safety_identifier and prompt_cache_key verbatim,
    # which /responses refuses over 64 characters: every Claude Code request
    # to gpt-5.4 failed with a 400.
    client = _anthropic(proxy)
    fields: Any = {
        "model": "gpt-5.4",
        "max_tokens": 32000,
        "metadata": {"user_id": CLAUDE_CODE_USER_ID},
        "thinking": {"type": "adaptive"},
        "messages": [{"role": "user", "content": "say hi"}],
    }

    def run() -> str:
        if not stream:
            message = client.messages.create(**fields)
            return "".join(b.text for b in message.content if b.type == "text")
        with client.messages.stream(**fields) as events:
            return "".join(events.text_stream)

    assert await in_thread(run)
    [sent] = _sent_to_responses(upstream)
    key = sent["prompt_cache_key"]
    assert len(key) <= 64 and sent["safety_identifier"] == key


def _openai(proxy: Proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0, timeout=15)


@pytest_twisted.ensureDeferred
async def test_an_anthropic_client_switches_from_a_responses_model_to_claude(
    proxy: Proxy, upstream: Upstream
) -> None:
    # gpt-5.4's reasoning reached the client as a thinking block signed
    # "<encrypted>@<id>"; sent on to Claude untouched it was refused
    # ("Invalid signature in thinking block") on every later turn.
    client = _anthropic(proxy)
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    messages: list[Any] = [{"role": "user", "content": "Think, then say hi."}]

    def run() -> str:
        first = client.messages.create(
            model="gpt-5.4", max_tokens=2000, thinking=thinking, messages=messages
        )
        assert any(b.type == "thinking" for b in first.content)
        messages.append({"role": "assistant", "content": [b.model_dump() for b in first.content]})
        messages.append({"role": "user", "content": "Again."})
        second = client.messages.create(
            model="claude-sonnet-4.6", max_tokens=2000, thinking=thinking, messages=messages
        )
        return "".join(b.text for b in second.content if b.type == "text")

    assert await in_thread(run)
    [native] = [json.loads(r.body) for r in upstream.fake.received if r.path == "/v1/messages"]
    assert [m["role"] for m in native["messages"]] == ["user", "assistant", "user"]
    assert all(b["type"] != "thinking" for b in native["messages"][1]["content"])


@pytest_twisted.ensureDeferred
async def test_a_responses_client_switches_from_claude_to_a_responses_model(
    proxy: Proxy, upstream: Upstream
) -> None:
    # As Codex does after /model: Claude's thinking reached it as a reasoning
    # item this proxy carries; sent on to /responses untouched it was refused
    # (invalid_encrypted_content) on every later turn.
    client = _openai(proxy)

    def run() -> str:
        history: list[Any] = [{"role": "user", "content": "Think, then say hi."}]
        first = client.responses.create(
            model="claude-sonnet-4.6",
            input=history,
            reasoning={"effort": "medium"},
            store=False,
            include=["reasoning.encrypted_content"],
        )
        assert any(item.type == "reasoning" for item in first.output)
        history += [item.model_dump(exclude_none=True) for item in first.output]
        history.append({"role": "user", "content": "Again."})
        second = client.responses.create(model="gpt-5.4", input=history, store=False)
        return second.output_text

    assert await in_thread(run)
    [sent] = _sent_to_responses(upstream)
    assert [i.get("type", "message") for i in sent["input"]] == ["message"] * 3
