"""
The routing rule (pure): which endpoint serves a model for each client shape.
"""

from __future__ import annotations

import json

import pytest

from copilot_proxy.surfaces import ModelEntry, choose, is_endpoint_refusal, parse_catalog
from copilot_proxy.translate import Shape

CHAT, RESPONSES, MESSAGES = Shape.CHAT, Shape.RESPONSES, Shape.MESSAGES

_CATALOG = {
    "object": "list",
    "data": [
        {
            "id": "claude-sonnet-4.6",
            "vendor": "Anthropic",
            "capabilities": {
                "type": "chat",
                "supports": {
                    "min_thinking_budget": 1024,
                    "max_thinking_budget": 32000,
                    "adaptive_thinking": True,
                    "reasoning_effort": ["low", "medium", "high"],
                },
            },
            "supported_endpoints": ["/chat/completions", "/v1/messages"],
        },
        {"id": "gpt-5.4", "supported_endpoints": ["/responses", "ws:/responses"]},
        {"id": "gpt-5.2", "supported_endpoints": ["/chat/completions", "/responses"]},
        {"id": "gemini-3.1-pro-preview", "supported_endpoints": ["/chat/completions"]},
        {"id": "gpt-4.1"},
        {"id": "text-embedding-3-small", "capabilities": {"type": "embeddings"}},
        {"id": "gpt-4.1", "supported_endpoints": ["/responses"]},
        {"id": "claude-opus-4.6", "policy": {"state": "disabled"}},
        "junk",
        {"id": 5},
    ],
}


def _entries() -> dict[str, ModelEntry]:
    return parse_catalog(_CATALOG)


def test_the_catalog_is_read_tolerantly_and_duplicates_keep_the_first() -> None:
    entries = _entries()
    assert set(entries) == {
        "claude-sonnet-4.6",
        "gpt-5.4",
        "gpt-5.2",
        "gemini-3.1-pro-preview",
        "gpt-4.1",
        "text-embedding-3-small",
        "claude-opus-4.6",
    }
    assert entries["gpt-4.1"].endpoints is None
    assert entries["gpt-5.4"].endpoints == (RESPONSES,)
    assert entries["gpt-5.4"].listed == ("/responses", "ws:/responses")
    assert entries["claude-opus-4.6"].disabled
    caps = entries["claude-sonnet-4.6"].caps
    assert caps.reasoning_effort == ("low", "medium", "high")
    assert (caps.min_thinking_budget, caps.max_thinking_budget) == (1024, 32000)


@pytest.mark.parametrize(
    ("client", "model", "expected"),
    [
        # The client's own shape when listed: passthrough.
        (CHAT, "gemini-3.1-pro-preview", CHAT),
        (RESPONSES, "gpt-5.4", RESPONSES),
        (MESSAGES, "claude-sonnet-4.6", MESSAGES),
        (CHAT, "claude-sonnet-4.6", CHAT),
        # Else the endpoint that keeps the most.
        (CHAT, "gpt-5.4", RESPONSES),
        (MESSAGES, "gpt-5.4", RESPONSES),
        (RESPONSES, "claude-sonnet-4.6", MESSAGES),
        (RESPONSES, "gemini-3.1-pro-preview", CHAT),
        (MESSAGES, "gpt-5.2", RESPONSES),
        # No list: Chat Completions for a chat model.
        (RESPONSES, "gpt-4.1", CHAT),
        (MESSAGES, "gpt-4.1", CHAT),
        # An embeddings model serves none of the model surfaces.
        (CHAT, "text-embedding-3-small", None),
    ],
)
def test_each_client_shape_gets_an_endpoint_its_model_lists(
    client: Shape, model: str, expected: Shape | None
) -> None:
    assert choose(client, _entries()[model]) is expected


def test_a_model_the_catalog_does_not_know_goes_as_the_client_asked() -> None:
    assert choose(RESPONSES, None) is RESPONSES


def test_a_refused_endpoint_is_not_chosen_again() -> None:
    entry = _entries()["gpt-5.2"]
    assert choose(CHAT, entry) is CHAT
    assert choose(CHAT, entry, refused={CHAT}) is RESPONSES
    assert choose(CHAT, entry, refused={CHAT, RESPONSES}) is None


def test_translate_mode_keeps_anthropic_clients_off_native_messages() -> None:
    entry = _entries()["claude-sonnet-4.6"]
    assert choose(MESSAGES, entry, native=False) is CHAT
    only_native = ModelEntry("claude-x", endpoints=(MESSAGES,))
    assert choose(MESSAGES, only_native, native=False) is MESSAGES


@pytest.mark.parametrize(
    "body",
    [
        {
            "error": {
                "message": 'model "gpt-5.4" is not accessible via the /chat/completions endpoint',
                "code": "unsupported_api_for_model",
            }
        },
        {
            "error": {
                "message": "model gemini-3.1-pro-preview does not support Responses API.",
                "code": "unsupported_api_for_model",
                "type": "invalid_request_error",
            }
        },
        {
            "error": {
                "message": (
                    'model "gpt-5.6-luna" is not accessible via the /chat/completions endpoint'
                ),
                "code": "model_not_supported",
                "type": "invalid_request_error",
            }
        },
    ],
)
def test_the_refusals_seen_in_2026_are_endpoint_refusals(body: object) -> None:
    assert is_endpoint_refusal(400, json.dumps(body).encode())


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (
            400,
            b'{"error":{"message":"The requested model is not supported.",'
            b'"code":"model_not_supported","param":"model"}}',
        ),
        (400, b"not json"),
        (400, b"[" * 5000),
        (429, b'{"error":{"message":"/chat/completions","code":"unsupported_api_for_model"}}'),
    ],
)
def test_other_answers_are_not(status: int, body: bytes) -> None:
    assert not is_endpoint_refusal(status, body)
