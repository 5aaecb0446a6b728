"""
The proxy path end to end: a real client, the real proxy and the fake Copilot
API, all on loopback sockets.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest_twisted

from copilot_proxy.testing.fake_upstream import ACCEPTED_TOKEN, MODELS

from .._helpers import (
    Proxy,
    Upstream,
    client_requests,
    fetch,
    send,
    stream_request,
    timeout,
    until,
)


@pytest_twisted.ensureDeferred
async def test_stream_reaches_client_before_upstream_finishes(
    proxy: Proxy, upstream: Upstream
) -> None:
    headers, body = stream_request(events=10, interval=0.05)
    response, collector = await send(proxy.url + "/chat/completions", b"POST", headers, body)
    assert response.code == 200
    assert response.headers.getRawHeaders(b"content-type") == [b"text/event-stream"]
    first = await timeout(collector.first)
    received = upstream.fake.received[-1]
    assert first.startswith(b"data: ")
    assert received.events_sent < 10, "the first event waited for the rest of the stream"
    await timeout(collector.done)
    assert collector.complete
    assert collector.body.endswith(b"data: [DONE]\n\n")
    assert collector.body.count(b"data: ") == 12


@pytest_twisted.ensureDeferred
async def test_query_string_and_path_reach_upstream(proxy: Proxy, upstream: Upstream) -> None:
    response, _ = await fetch(proxy.url + "/some/path?api-version=2025-04-01&x=%2F1")
    assert response.code == 200
    received = upstream.fake.received[-1]
    assert received.path == "/some/path"
    assert received.query == "api-version=2025-04-01&x=%2F1"


@pytest_twisted.ensureDeferred
async def test_upstream_path_prefix_is_kept(make_proxy: Any, upstream: Upstream) -> None:
    proxy = make_proxy(upstream.url + "/prefix/")
    await fetch(proxy.url + "/models?a=1")
    received = upstream.fake.received[-1]
    assert (received.path, received.query) == ("/prefix/models", "a=1")


@pytest_twisted.ensureDeferred
async def test_token_injected_and_client_credentials_never_forwarded(
    proxy: Proxy, upstream: Upstream
) -> None:
    await fetch(
        proxy.url + "/models",
        headers={
            "Authorization": "Bearer sk-client-key",
            "x-api-key": "sk-ant-client",
            "Proxy-Authorization": "Basic abc",
            "Connection": "keep-alive, X-Secret-Hop",
            "X-Secret-Hop": "1",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Upgrade": "websocket",
            "X-Kept": "yes",
        },
    )
    received = upstream.fake.received[-1]
    assert received.headers["authorization"] == [f"Bearer {ACCEPTED_TOKEN}"]
    for name in ("x-api-key", "proxy-authorization", "x-secret-hop", "keep-alive", "te"):
        assert name not in received.headers, name
    assert "upgrade" not in received.headers
    assert received.header("x-kept") == "yes"
    assert received.header("host") == upstream.url.removeprefix("http://")


@pytest_twisted.ensureDeferred
async def test_request_body_forwarded_byte_for_byte(proxy: Proxy, upstream: Upstream) -> None:
    body = json.dumps({"model": "gpt-4o", "messages": [{"content": "é" * 300_000}]}).encode()
    response, answer = await fetch(
        proxy.url + "/chat/completions",
        b"POST",
        {"content-type": "application/json"},
        body,
    )
    assert response.code == 200
    received = upstream.fake.received[-1]
    assert received.body == body
    assert received.header("content-length") == str(len(body))
    assert json.loads(answer)["object"] == "chat.completion"


@pytest_twisted.ensureDeferred
async def test_empty_post_carries_content_length_zero(proxy: Proxy, upstream: Upstream) -> None:
    await fetch(proxy.url + "/x", b"POST", {"x-fake-mode": "echo"})
    assert upstream.fake.received[-1].header("content-length") == "0"


@pytest_twisted.ensureDeferred
async def test_upstream_error_statuses_pass_through_with_body(
    proxy: Proxy, upstream: Upstream
) -> None:
    for status in (401, 429, 500, 503):
        response, body = await fetch(
            proxy.url + "/chat/completions", b"POST", {"x-fake-status": str(status)}, b"{}"
        )
        assert response.code == status
        assert json.loads(body)["error"]["message"] == f"fake error {status}"
        assert response.headers.getRawHeaders(b"x-fake-upstream") == [b"1"]
        if status in (429, 503):
            assert response.headers.getRawHeaders(b"retry-after") == [b"7"]


@pytest_twisted.ensureDeferred
async def test_wrong_token_gets_upstream_401(make_proxy: Any, upstream: Upstream) -> None:
    proxy = make_proxy(upstream.url, token="not-the-right-token")
    response, body = await fetch(proxy.url + "/models")
    assert response.code == 401
    assert b"token expired" in body


@pytest_twisted.ensureDeferred
async def test_compressed_body_passes_untouched(proxy: Proxy, upstream: Upstream) -> None:
    response, body = await fetch(
        proxy.url + "/models", headers={"accept-encoding": "gzip", "x-fake-mode": "gzip"}
    )
    assert response.headers.getRawHeaders(b"content-encoding") == [b"gzip"]
    assert response.length == len(body)
    assert json.loads(gzip.decompress(body)) == MODELS


@pytest_twisted.ensureDeferred
async def test_absolute_form_and_connect_are_refused(proxy: Proxy, upstream: Upstream) -> None:
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
    from twisted.internet.protocol import Protocol

    port = int(proxy.url.rsplit(":", 1)[1])
    for line in (b"GET http://example.com/ HTTP/1.1", b"CONNECT example.com:443 HTTP/1.1"):

        class Raw(Protocol):
            def __init__(self) -> None:
                self.answer = b""

            def dataReceived(self, data: bytes) -> None:
                self.answer += data

        protocol = Raw()
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), protocol)
        assert protocol.transport is not None
        protocol.transport.write(line + b"\r\nHost: example.com\r\nConnection: close\r\n\r\n")
        await until(lambda p=protocol: b"\r\n\r\n" in p.answer)
        text = protocol.answer
        assert text.startswith(b"HTTP/1.1 400"), text
        protocol.transport.loseConnection()
    assert upstream.fake.received == []


@pytest_twisted.ensureDeferred
async def test_upstream_connections_are_reused(proxy: Proxy, upstream: Upstream) -> None:
    for _ in range(3):
        await fetch(proxy.url + "/models")
    headers, body = stream_request(events=2)
    await fetch(proxy.url + "/chat/completions", b"POST", headers, body)
    ports = {r.peer_port for r in upstream.fake.received}
    assert len(client_requests(upstream.fake)) == 4
    assert len(ports) == 1, ports


@pytest_twisted.ensureDeferred
async def test_form_bodies_are_relayed_not_parsed(proxy: Proxy, upstream: Upstream) -> None:
    # Twisted would parse form fields out of these (and answer a broken
    # multipart body with its own 400); a proxy relays them as they are.
    broken = b"--b\r\nnot a part"
    response, _ = await fetch(
        proxy.url + "/upload",
        b"POST",
        {"content-type": "multipart/form-data"},
        broken,
    )
    assert response.code == 200
    assert upstream.fake.received[-1].body == broken
