"""
Requests shaped as real coding agents send them (Claude Code 2.1, Codex CLI
0.171, seen through the proxy against the 2026 fake), each on a model that
makes the proxy translate.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
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
