"""The Copilot request header rules and the /v1 routes, without a reactor."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.web.http_headers import Headers

from copilot_proxy.settings import ConfigError, keepalive_seconds
from copilot_proxy.wire import (
    DEFAULT_HEADERS,
    CopilotHeaders,
    Surface,
    classify,
    has_image,
    initiator,
    parse_json_body,
    parse_override,
    upstream_target,
)


def _user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"messages": [_user("hi")]}, "user"),
        ({"messages": [_user([{"type": "text", "text": "hi"}])]}, "user"),
        ({"messages": [_user("hi"), {"role": "assistant", "content": "yo"}]}, "agent"),
        (
            {"messages": [_user("hi"), {"role": "tool", "tool_call_id": "1", "content": "4"}]},
            "agent",
        ),
        # Anthropic: a user turn made only of tool results is the agent loop.
        (
            {"messages": [_user([{"type": "tool_result", "tool_use_id": "t", "content": "4"}])]},
            "agent",
        ),
        (
            {
                "messages": [
                    _user(
                        [
                            {"type": "tool_result", "tool_use_id": "t", "content": "4"},
                            {"type": "text", "text": "now explain"},
                        ]
                    )
                ]
            },
            "user",
        ),
        # Responses API.
        ({"input": "hi"}, "user"),
        ({"input": [{"role": "user", "content": "hi"}]}, "user"),
        ({"input": [{"type": "function_call_output", "call_id": "c", "output": "4"}]}, "agent"),
        ({"messages": []}, "agent"),
        ({"messages": [_user([])]}, "agent"),
        (None, "agent"),
        ([1, 2], "agent"),
    ],
)
def test_initiator_is_user_only_for_the_users_own_last_message(
    payload: object, expected: str
) -> None:
    assert initiator(payload) == expected


def test_image_parts_are_noticed_in_every_shape() -> None:
    openai = {"messages": [_user([{"type": "image_url", "image_url": {"url": "data:x"}}])]}
    anthropic = {"messages": [_user([{"type": "image", "source": {"type": "base64"}}])]}
    responses = {"input": [_user([{"type": "input_image", "image_url": "data:x"}])]}
    nested = {
        "messages": [
            _user([{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image"}]}])
        ]
    }
    for payload in (openai, anthropic, responses, nested):
        assert has_image(payload)
    assert not has_image({"messages": [_user("a picture of a cat")]})
    assert not has_image(None)


def test_parse_json_body_is_lenient() -> None:
    assert parse_json_body(b'{"a": 1}') == {"a": 1}
    assert parse_json_body(b"") is None
    assert parse_json_body(b"not json") is None
    assert parse_json_body(b"{broken") is None


def _apply(copilot: CopilotHeaders, client: dict[bytes, bytes], payload: object) -> Headers:
    headers = Headers({k: [v] for k, v in client.items()})
    copilot.apply(headers, payload)
    return headers


def test_defaults_added_and_client_headers_win() -> None:
    copilot = CopilotHeaders()
    headers = _apply(copilot, {b"editor-version": b"vscode/9.9.9"}, {"messages": [_user("x")]})
    assert headers.getRawHeaders(b"editor-version") == [b"vscode/9.9.9"]
    for name, value in DEFAULT_HEADERS:
        if name != "editor-version":
            assert headers.getRawHeaders(name.encode()) == [value.encode()], name
    assert headers.getRawHeaders(b"x-initiator") == [b"user"]
    assert not headers.hasHeader(b"copilot-vision-request")


def test_client_user_agent_is_replaced() -> None:
    headers = _apply(CopilotHeaders(), {b"user-agent": b"curl/8.0"}, None)
    assert headers.getRawHeaders(b"user-agent") == [b"GitHubCopilotChat/0.52.0"]


def test_client_initiator_wins() -> None:
    headers = _apply(CopilotHeaders(), {b"x-initiator": b"agent"}, {"messages": [_user("x")]})
    assert headers.getRawHeaders(b"x-initiator") == [b"agent"]


def test_request_id_can_be_the_callers() -> None:
    headers = Headers()
    CopilotHeaders().apply(headers, None, "abc123")
    assert headers.getRawHeaders(b"x-request-id") == [b"abc123"]


def test_request_id_is_fresh_for_every_request() -> None:
    copilot = CopilotHeaders()
    ids: set[bytes] = set()
    for _ in range(20):
        values = _apply(copilot, {}, None).getRawHeaders(b"x-request-id")
        assert values is not None
        ids.add(values[0])
    assert len(ids) == 20


def test_overrides_replace_and_drop_defaults() -> None:
    copilot = CopilotHeaders.with_overrides(
        [("editor-version", "vscode/2.0.0"), ("openai-intent", ""), ("x-extra", "1")]
    )
    headers = _apply(copilot, {}, None)
    assert headers.getRawHeaders(b"editor-version") == [b"vscode/2.0.0"]
    assert not headers.hasHeader(b"openai-intent")
    assert headers.getRawHeaders(b"x-extra") == [b"1"]


def test_vision_header_set_for_images() -> None:
    payload = {"messages": [_user([{"type": "image_url", "image_url": {"url": "data:x"}}])]}
    headers = _apply(CopilotHeaders(), {}, payload)
    assert headers.getRawHeaders(b"copilot-vision-request") == [b"true"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Editor-Version: vscode/1.2.3", ("editor-version", "vscode/1.2.3")),
        ("x-github-api-version:2026-01-01", ("x-github-api-version", "2026-01-01")),
        ("openai-intent:", ("openai-intent", "")),
    ],
)
def test_header_override_parses(text: str, expected: tuple[str, str]) -> None:
    assert parse_override(text) == expected


@pytest.mark.parametrize(
    "text", ["no colon", ": value", "bad name: v", "Authorization: Bearer x", "Host: elsewhere"]
)
def test_header_override_refuses_bad_or_reserved(text: str) -> None:
    with pytest.raises(ValueError, match="--header"):
        parse_override(text)


def test_stale_version_message_names_the_options() -> None:
    message = CopilotHeaders().stale_version_message("bad request: version no longer supported")
    assert "--header 'editor-version:" in message
    assert "x-github-api-version" in message
    assert "no longer supported" in message


def test_keepalive_option() -> None:
    assert keepalive_seconds("15") == 15.0
    assert keepalive_seconds("0") is None
    for bad in ("-1", "soon", "inf"):
        with pytest.raises(ConfigError):
            keepalive_seconds(bad)


@pytest.mark.parametrize(
    ("uri", "target"),
    [
        (b"/v1/chat/completions", b"/chat/completions"),
        (b"/v1/chat/completions?x=1", b"/chat/completions?x=1"),
        (b"/v1/models", b"/models"),
        (b"/v1/models/gpt-4o", b"/models/gpt-4o"),
        (b"/v1/embeddings", b"/embeddings"),
        (b"/v1/responses", b"/responses"),
        (b"/chat/completions", b"/chat/completions"),
        (b"/v1/modelsx", b"/v1/modelsx"),
        (b"/v1/other", b"/v1/other"),
        (b"/v1/messages", b"/v1/messages"),
    ],
)
def test_v1_alias_targets(uri: bytes, target: bytes) -> None:
    assert upstream_target(uri) == target


def test_surfaces() -> None:
    assert classify(b"/v1/messages") is Surface.MESSAGES
    assert classify(b"/v1/messages?beta=true") is Surface.MESSAGES
    assert classify(b"/v1/messages/count_tokens") is Surface.COUNT_TOKENS
    assert classify(b"/v1/chat/completions") is Surface.OPENAI
    assert classify(b"/messages") is Surface.OPENAI


def test_surface_options_parse() -> None:
    from copilot_proxy.app import Options, config_from

    options = Options()
    options.parseOptions(
        [
            "--header",
            "Editor-Version: vscode/2.0.0",
            "--header",
            "openai-intent:",
            "--sse-keepalive",
            "0",
            "--messages-mode",
            "native",
            "--model-map",
            "claude-haiku-9=gpt-4.1",
            "--model-map",
            "a=b",
        ]
    )
    config = config_from(options, {"COPILOT_TOKEN": "t"})
    assert config.headers == (("editor-version", "vscode/2.0.0"), ("openai-intent", ""))
    assert config.sse_keepalive is None
    assert config.messages_mode == "native"
    assert config.model_map == (("claude-haiku-9", "gpt-4.1"), ("a", "b"))


@pytest.mark.parametrize(
    "argv",
    [
        ["--header", "Authorization: Bearer x"],
        ["--header", "nocolon"],
        ["--messages-mode", "both"],
        ["--model-map", "nothing"],
        ["--sse-keepalive", "-3"],
    ],
)
def test_bad_surface_options_are_config_errors(argv: list[str]) -> None:
    from copilot_proxy.app import Options, config_from

    options = Options()
    options.parseOptions(argv)
    with pytest.raises(ConfigError):
        config_from(options, {"COPILOT_TOKEN": "t"})


def test_a_client_session_becomes_the_stable_interaction_id() -> None:
    headers = Headers({b"x-claude-code-session-id": [b"sess-1"]})
    CopilotHeaders().apply(headers, None, "rid-1")
    assert headers.getRawHeaders(b"x-interaction-id") == [b"sess-1"]
    assert headers.getRawHeaders(b"x-agent-task-id") == [b"rid-1"]
    own = Headers({b"x-interaction-id": [b"mine"], b"session_id": [b"s"]})
    CopilotHeaders().apply(own, None)
    assert own.getRawHeaders(b"x-interaction-id") == [b"mine"]
