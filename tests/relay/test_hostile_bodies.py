"""
Hostile client bodies: too deep, ill-typed, or not the surface's shape.  Each
gets a 400 in the surface's own error shape, nothing goes upstream, and
nothing is left in flight.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import pytest_twisted

from .._helpers import Proxy, Upstream, client_requests, fetch

_DEEP = b'{"model":"gpt-4o","messages":' + b"[" * 5000 + b"]" * 5000 + b"}"
_DEEP_MESSAGES = (
    b'{"model":"claude-sonnet-4","max_tokens":5,"messages":' + b"[" * 5000 + b"]" * 5000 + b"}"
)

_OPENAI_PATHS = ["/v1/chat/completions", "/chat/completions", "/v1/responses"]
_ANTHROPIC_PATHS = ["/v1/messages", "/v1/messages/count_tokens"]


async def _post(proxy: Proxy, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    response, answer = await fetch(
        proxy.url + path, b"POST", {"content-type": "application/json"}, body
    )
    assert response.headers.getRawHeaders(b"content-type") == [b"application/json"]
    return response.code, json.loads(answer)


@pytest.mark.parametrize("path", _OPENAI_PATHS)
@pytest_twisted.ensureDeferred
async def test_deep_json_on_an_openai_path_is_a_400_in_openai_shape(
    proxy: Proxy, upstream: Upstream, path: str
) -> None:
    code, body = await _post(proxy, path, _DEEP)
    assert code == 400
    assert body["error"]["code"] == "invalid_request"
    assert "nested too deeply" in body["error"]["message"]
    assert client_requests(upstream.fake) == []
    assert proxy.service.in_flight == 0


@pytest.mark.parametrize("path", _ANTHROPIC_PATHS)
@pytest_twisted.ensureDeferred
async def test_deep_json_on_an_anthropic_path_is_a_400_in_anthropic_shape(
    proxy: Proxy, upstream: Upstream, path: str
) -> None:
    code, body = await _post(proxy, path, _DEEP_MESSAGES)
    assert code == 400
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert [r for r in upstream.fake.received if r.path != "/models"] == []
    assert proxy.service.in_flight == 0


@pytest.mark.parametrize(
    "field",
    [
        {"tools": 5},
        {"tools": [5, "x"]},
        {"messages": 5},
        {"messages": [{"role": "user", "content": 5}]},
        {"messages": [{"role": "user", "content": [5, {"type": 7}]}]},
        {"system": {"a": 1}},
        {"tool_choice": 5, "tools": [{"name": "t", "input_schema": 5}]},
        {"stop_sequences": "x", "max_tokens": "many"},
    ],
)
@pytest_twisted.ensureDeferred
async def test_ill_typed_messages_fields_never_give_a_502(
    proxy: Proxy, upstream: Upstream, field: dict[str, Any]
) -> None:
    request = {
        "model": "claude-sonnet-4",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}],
    }
    request.update(field)
    for path in _ANTHROPIC_PATHS:
        code, body = await _post(proxy, path, json.dumps(request).encode())
        assert code in (200, 400), (path, code, body)
        if code == 400:
            assert body["type"] == "error"
    assert proxy.service.in_flight == 0


@pytest_twisted.ensureDeferred
async def test_many_deep_bodies_leave_nothing_in_flight(proxy: Proxy) -> None:
    for _ in range(50):
        code, _ = await _post(proxy, "/v1/messages/count_tokens", _DEEP_MESSAGES)
        assert code == 400
        code, _ = await _post(proxy, "/v1/chat/completions", _DEEP)
        assert code == 400
    assert proxy.service.in_flight == 0
