"""
An upstream that misbehaves (copilot_proxy.testing.evil_upstream): a cut
stream is never passed on as complete, a malformed answer never hangs a
request, encoded bodies are never written into, and framing and headers no
client could parse never reach one.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted

from copilot_proxy.testing.evil_upstream import GZIPPED_STREAM, SCRIPTS, EvilUpstream

from .._helpers import Proxy, fetch, send, stop_listening, timeout

_CHAT = json.dumps(
    {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
).encode()


def _messages(stream: bool) -> bytes:
    return json.dumps(
        {
            "model": "claude-sonnet-4",
            "max_tokens": 20,
            "stream": stream,
            "messages": [{"role": "user", "content": "hi"}],
        }
    ).encode()


@pytest_twisted.async_yield_fixture
async def evil(reactor: Any) -> AsyncIterator[tuple[EvilUpstream, str]]:
    upstream = EvilUpstream(reactor)
    port = reactor.listenTCP(0, upstream, interface="127.0.0.1")
    yield upstream, f"http://127.0.0.1:{port.getHost().port}"
    await stop_listening(port)


async def _post(
    proxy: Proxy, path: str, script: str, body: bytes = _CHAT
) -> tuple[int, Any, bytes, bool]:
    headers = {"content-type": "application/json", "x-evil": script}
    response, collector = await send(proxy.url + path, b"POST", headers, body)
    await timeout(collector.done, 10)
    return response.code, response.headers, collector.body, collector.complete


def _access_outcomes(log_events: list[dict[str, Any]]) -> list[str]:
    return [str(e["outcome"]) for e in log_events if "outcome" in e and "request_id" in e]


# 6. A cut stream is never reported complete ------------------------------


@pytest.mark.parametrize("script", ["close-delimited-reset", "short-body", "chunked-reset"])
@pytest_twisted.ensureDeferred
async def test_a_cut_passthrough_stream_is_cut_for_the_client_and_logged_as_an_upstream_error(
    make_proxy: Any, evil: tuple[EvilUpstream, str], log_events: list[dict[str, Any]], script: str
) -> None:
    proxy = make_proxy(evil[1])
    code, _, body, complete = await _post(proxy, "/v1/chat/completions", script)
    assert code == 200
    assert body.startswith(b"data: ")
    assert not complete
    assert _access_outcomes(log_events)[-1] == "upstream_error"


@pytest_twisted.ensureDeferred
async def test_a_close_delimited_stream_that_ends_cleanly_is_complete(
    make_proxy: Any, evil: tuple[EvilUpstream, str], log_events: list[dict[str, Any]]
) -> None:
    proxy = make_proxy(evil[1])
    code, _, body, complete = await _post(proxy, "/v1/chat/completions", "close-delimited-clean")
    assert (code, complete) == (200, True)
    assert body.endswith(b"data: [DONE]\n\n")
    assert _access_outcomes(log_events)[-1] == "complete"


@pytest.mark.parametrize("script", ["close-delimited-reset", "short-body", "chunked-reset"])
@pytest_twisted.ensureDeferred
async def test_a_cut_translated_stream_ends_with_an_error_event_and_no_message_stop(
    make_proxy: Any, evil: tuple[EvilUpstream, str], script: str
) -> None:
    proxy = make_proxy(evil[1])
    code, _, body, complete = await _post(proxy, "/v1/messages", script, _messages(True))
    assert code == 200
    assert not complete
    assert b"event: error" in body
    assert b"message_stop" not in body
    assert b"end_turn" not in body


@pytest_twisted.ensureDeferred
async def test_a_non_streaming_message_cut_mid_body_gets_a_502(
    make_proxy: Any, evil: tuple[EvilUpstream, str]
) -> None:
    proxy = make_proxy(evil[1])
    code, _, body, complete = await _post(proxy, "/v1/messages", "cut-json", _messages(False))
    assert (code, complete) == (502, True)
    assert json.loads(body)["type"] == "error"


# 7. A malformed upstream answer never hangs a request ----------------------


@pytest.mark.parametrize(
    "script",
    ["message-str", "tool-calls-str", "usage-list", "usage-huge", "choices-int", "deep-json"],
)
@pytest_twisted.ensureDeferred
async def test_a_malformed_chat_completion_is_a_502_in_anthropic_shape(
    make_proxy: Any, evil: tuple[EvilUpstream, str], script: str
) -> None:
    proxy = make_proxy(evil[1], idle_timeout=5.0)
    code, _, body, complete = await _post(proxy, "/v1/messages", script, _messages(False))
    assert complete
    if code == 200:
        # A translator may read some oddities as nothing (no usage): fine,
        # as long as the answer is a whole Anthropic message.
        assert json.loads(body)["type"] == "message"
    else:
        assert code == 502
        assert json.loads(body)["type"] == "error"
    assert proxy.service.in_flight == 0


@pytest_twisted.ensureDeferred
async def test_an_ill_typed_stream_ends_with_an_error_event_and_is_cut(
    make_proxy: Any, evil: tuple[EvilUpstream, str], log_events: list[dict[str, Any]]
) -> None:
    proxy = make_proxy(evil[1], idle_timeout=5.0)
    code, _, body, complete = await _post(
        proxy, "/v1/messages", "stream-ill-typed", _messages(True)
    )
    assert code == 200
    assert not complete
    assert b"event: error" in body
    assert b"message_stop" not in body
    assert _access_outcomes(log_events)[-1] == "upstream_error"
    assert proxy.service.in_flight == 0


@pytest_twisted.ensureDeferred
async def test_a_model_list_nested_too_deep_answers_every_waiter(
    make_proxy: Any, evil: tuple[EvilUpstream, str]
) -> None:
    upstream, url = evil
    upstream.models = list(SCRIPTS["models-deep"])
    proxy = make_proxy(url, idle_timeout=5.0)
    # The list is unusable: the name passes through unmapped, and the model is
    # asked on the client's own endpoint.
    code, _, body, complete = await _post(proxy, "/v1/messages", "message-str", _messages(False))
    assert complete
    assert code in (200, 502)
    assert ("/v1/messages", "message-str") in upstream.received


# 8. Encoded bodies are never written into -----------------------------------


@pytest_twisted.ensureDeferred
async def test_no_keepalive_goes_into_a_gzip_encoded_event_stream(
    make_proxy: Any, evil: tuple[EvilUpstream, str]
) -> None:
    proxy = make_proxy(evil[1], sse_keepalive=0.1)
    code, headers, body, complete = await _post(proxy, "/v1/chat/completions", "gzip-stream")
    assert (code, complete) == (200, True)
    assert headers.getRawHeaders(b"content-encoding") == [b"gzip"]
    assert body == GZIPPED_STREAM
    assert gzip.decompress(body).endswith(b"data: [DONE]\n\n")


# 9. Upstream framing and headers ---------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_status_outside_100_to_599_is_a_502(
    make_proxy: Any, evil: tuple[EvilUpstream, str]
) -> None:
    proxy = make_proxy(evil[1])
    code, _, body, complete = await _post(proxy, "/v1/chat/completions", "status-2000")
    assert (code, complete) == (502, True)
    assert json.loads(body)["error"]["code"] == "upstream_bad_status"


@pytest_twisted.ensureDeferred
async def test_headers_named_in_the_upstream_connection_header_are_dropped(
    make_proxy: Any, evil: tuple[EvilUpstream, str]
) -> None:
    proxy = make_proxy(evil[1])
    code, headers, _, complete = await _post(proxy, "/v1/chat/completions", "connection-named")
    assert (code, complete) == (200, True)
    assert not headers.hasHeader(b"x-hop")
    assert headers.getRawHeaders(b"x-kept") == [b"yes"]


@pytest_twisted.ensureDeferred
async def test_header_bytes_outside_ascii_pass_unchanged(
    make_proxy: Any, evil: tuple[EvilUpstream, str]
) -> None:
    proxy = make_proxy(evil[1])
    response, _ = await fetch(
        proxy.url + "/v1/chat/completions",
        b"POST",
        {"content-type": "application/json", "x-evil": "latin1-header"},
        _CHAT,
    )
    values = response.headers.getRawHeaders(b"x-name")
    assert values in (None, [b"caf\xe9"])
