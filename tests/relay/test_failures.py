"""
What the client sees when things go wrong, and what the upstream sees when the
client goes wrong: timeouts, refusals, resets, disconnects, slow readers.
"""

from __future__ import annotations

import json
import socket
from typing import Any, cast

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.interfaces import IPushProducer, IReactorSSL
from twisted.logger import formatEvent

from copilot_proxy.testing.fake_upstream import ACCEPTED_TOKEN

from .._helpers import (
    Proxy,
    Upstream,
    fetch,
    port_number,
    send,
    stop_listening,
    stream_request,
    timeout,
    until,
)


def _error(body: bytes) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(body)["error"]
    assert set(error) >= {"message", "type", "code"}
    return error


@pytest_twisted.ensureDeferred
async def test_client_disconnect_aborts_upstream(proxy: Proxy, upstream: Upstream) -> None:
    headers, body = stream_request(events=1000, interval=0.02)
    response, collector = await send(proxy.url + "/chat/completions", b"POST", headers, body)
    await timeout(collector.first)
    received = upstream.fake.received[-1]
    assert collector.transport is not None
    collector.transport.loseConnection()
    # The upstream sees its connection close within a second: the generation
    # nobody reads stops.
    await timeout(received.connection_lost, 1.0)
    assert received.events_sent < 1000
    await until(lambda: len(proxy.service._inflight) == 0)


@pytest_twisted.ensureDeferred
async def test_client_gone_before_answer_cancels_upstream_request(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = make_proxy(upstream.url)
    arrived = upstream.fake.next_request()
    from twisted.web.client import Agent

    d = Agent(reactor).request(
        b"GET", (proxy.url + "/models").encode(), _headers({"x-fake-mode": "hang"})
    )
    received = await timeout(arrived)
    d.cancel()
    await timeout(received.connection_lost, 1.0)
    d.addErrback(lambda f: None)


def _headers(values: dict[str, str]) -> Any:
    from twisted.web.http_headers import Headers

    return Headers({k.encode(): [v.encode()] for k, v in values.items()})


@pytest_twisted.ensureDeferred
async def test_slow_client_pauses_upstream_and_memory_stays_bounded(
    proxy: Proxy, upstream: Upstream
) -> None:
    total = 50 * 1024 * 1024
    rss_before = _rss()
    response, collector = await send(
        proxy.url + "/blob", headers={"x-fake-mode": "bulk", "x-fake-bytes": str(total)}
    )
    assert response.code == 200
    # The client stops reading.  Upstream gets paused through the proxy once
    # the socket buffers in between are full, long before 50 MB.
    # Agent hands the body protocol a transport that is a push producer.
    cast(IPushProducer, collector.transport).pauseProducing()
    fake = upstream.fake
    await until(lambda: fake.bulk_pauses > 0)
    await _settled(lambda: fake.bulk_sent)
    assert fake.bulk_sent < total / 2, fake.bulk_sent
    assert _rss() - rss_before < 24 * 1024 * 1024
    # Reading again drains everything, intact.
    cast(IPushProducer, collector.transport).resumeProducing()
    await timeout(collector.done, 30)
    assert collector.complete
    assert sum(len(c) for c in collector.chunks) == total


async def _settled(read: Any) -> None:
    """Wait until a counter stops moving for a few polls."""
    from twisted.internet.task import deferLater

    last, still = read(), 0
    while still < 5:
        await deferLater(reactor, 0.05, lambda: None)
        now = read()
        still = still + 1 if now == last else 0
        last = now


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest_twisted.ensureDeferred
async def test_upstream_refused_gives_502_json(make_proxy: Any) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    proxy = make_proxy(f"http://127.0.0.1:{port}")
    response, body = await fetch(proxy.url + "/chat/completions", b"POST", body=b"{}")
    assert response.code == 502
    assert response.headers.getRawHeaders(b"content-type") == [b"application/json"]
    assert "refused" in _error(body)["message"].lower()


@pytest_twisted.ensureDeferred
async def test_upstream_that_never_answers_gives_504(make_proxy: Any, upstream: Upstream) -> None:
    proxy = make_proxy(upstream.url, idle_timeout=0.3)
    arrived = upstream.fake.next_request()
    response, body = await fetch(proxy.url + "/models", headers={"x-fake-mode": "hang"})
    assert response.code == 504
    assert _error(body)["code"] == "upstream_timeout"
    received = await arrived
    await timeout(received.connection_lost, 1.0)


@pytest_twisted.ensureDeferred
async def test_connect_timeout_gives_504(make_proxy: Any) -> None:
    # A listening socket whose accept queue is full: the kernel drops further
    # SYNs, so a connect neither succeeds nor fails.
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(full.getsockname())
        fillers.append(s)
    try:
        proxy = make_proxy(f"http://127.0.0.1:{full.getsockname()[1]}", connect_timeout=0.3)
        response, body = await fetch(proxy.url + "/models")
        assert response.code == 504
        assert _error(body)["code"] == "upstream_timeout"
    finally:
        for s in [*fillers, full]:
            s.close()


@pytest_twisted.ensureDeferred
async def test_upstream_silent_mid_stream_is_cut_not_finished(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = make_proxy(upstream.url, idle_timeout=0.3)
    headers, body = stream_request(events=2, mode="stall")
    response, collector = await send(proxy.url + "/chat/completions", b"POST", headers, body)
    assert response.code == 200
    await timeout(collector.done, 3)
    assert not collector.complete, "a cut stream must not look complete"
    assert collector.body.count(b"data: ") == 2
    received = upstream.fake.received[-1]
    await timeout(received.connection_lost, 1.0)


@pytest_twisted.ensureDeferred
async def test_upstream_reset_mid_stream_is_cut_for_client(
    proxy: Proxy, upstream: Upstream
) -> None:
    headers, body = stream_request(events=3, mode="reset", interval=0.02)
    response, collector = await send(proxy.url + "/chat/completions", b"POST", headers, body)
    await timeout(collector.done)
    assert not collector.complete
    assert b"[DONE]" not in collector.body


@pytest_twisted.ensureDeferred
async def test_tls_upstream_with_untrusted_certificate_gives_502(
    make_proxy: Any, upstream: Upstream, tmp_path: Any
) -> None:
    from twisted.internet import ssl

    from .._tls import self_signed

    key, cert = self_signed(tmp_path, "localhost")
    context = ssl.DefaultOpenSSLContextFactory(str(key), str(cert))
    port = cast(IReactorSSL, reactor).listenSSL(
        0, upstream.fake.site, context, interface="127.0.0.1"
    )
    try:
        proxy = make_proxy(f"https://localhost:{port_number(port)}")
        response, body = await fetch(proxy.url + "/models")
        assert response.code == 502
        assert _error(body)["code"] == "upstream_unreachable"
        assert upstream.fake.received == []
    finally:
        await stop_listening(port)


@pytest_twisted.ensureDeferred
async def test_token_never_logged_or_shown(
    make_proxy: Any, upstream: Upstream, log_events: list[dict[str, Any]]
) -> None:
    proxy = make_proxy(upstream.url)
    await fetch(proxy.url + "/models?key=" + ACCEPTED_TOKEN)
    headers, body = stream_request(events=2)
    await fetch(proxy.url + "/chat/completions", b"POST", headers, body)
    await fetch(proxy.url + "/x", headers={"x-fake-status": "500"})
    assert log_events, "the access log is silent"
    text = "\n".join(formatEvent(e) + repr(e) for e in log_events)
    assert "/models?key" in text
    assert ACCEPTED_TOKEN not in text
    for obj in (proxy.service, proxy.service._site.resource):
        assert ACCEPTED_TOKEN not in repr(obj)
        assert ACCEPTED_TOKEN not in repr(vars(obj))


def test_secret_repr_hides_value() -> None:
    from copilot_proxy.tokens import StaticToken
    from copilot_proxy.wire import Secret

    secret = Secret("tid=abc;exp=1")
    assert "abc" not in repr(secret) + str(secret) + f"{secret}"
    assert "abc" not in repr(StaticToken(secret))
