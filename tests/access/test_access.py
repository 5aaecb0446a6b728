"""
Who may use the proxy and what it refuses, end to end: client keys, path
escapes, request limits.  Every refusal is checked to cost the upstream
nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.logger import formatEvent

from copilot_proxy.access import AccessConfig, RequestLimits, parse_keys_env
from copilot_proxy.testing.fake_upstream import ACCEPTED_TOKEN

from .._helpers import Upstream, client_requests, fetch, send, stream_request, timeout
from .._raw import connect, exchange

ALICE = "sk-alice-0123456789abcdef"
BOB = "sk-bob-0123456789abcdef00"


def _error(body: bytes) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(body)["error"]
    assert set(error) >= {"message", "type", "code"}
    return error


@pytest.fixture
def keyed(make_proxy: Any, upstream: Upstream, tmp_path: Path) -> Any:
    path = tmp_path / "keys"
    path.write_text(f"{ALICE} alice\n")
    return make_proxy(
        upstream.url, access=AccessConfig(keys_file=str(path), env_keys=tuple(parse_keys_env(BOB)))
    )


@pytest_twisted.ensureDeferred
async def test_missing_or_wrong_key_gets_401_and_reaches_no_upstream(
    keyed: Any, upstream: Upstream
) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer sk-wrong-0123456789abcdef"},
        {"x-api-key": ALICE + "x"},
        {"Authorization": f"Basic {ALICE}"},
    ):
        response, body = await fetch(keyed.url + "/models", headers=headers)
        assert response.code == 401, headers
        assert _error(body)["code"] == "invalid_api_key"
        assert response.headers.getRawHeaders(b"content-type") == [b"application/json"]
    assert upstream.fake.received == []


@pytest_twisted.ensureDeferred
async def test_right_key_passes_and_is_never_forwarded(
    keyed: Any, upstream: Upstream, log_events: list[dict[str, Any]]
) -> None:
    for headers in ({"Authorization": f"Bearer {ALICE}"}, {"x-api-key": BOB}):
        response, _ = await fetch(
            keyed.url + "/chat/completions", b"POST", dict(headers, **{"x-fake-mode": "echo"})
        )
        assert response.code == 200
        received = upstream.fake.received[-1]
        assert received.headers["authorization"] == [f"Bearer {ACCEPTED_TOKEN}"]
        assert "x-api-key" not in received.headers
        assert ALICE not in received.body.decode() and BOB not in received.body.decode()
    logged = "\n".join(formatEvent(e) for e in log_events)
    assert ALICE not in logged and BOB not in logged
    assert "key=alice" in logged


@pytest_twisted.ensureDeferred
async def test_a_keyed_stream_is_relayed_whole(keyed: Any, upstream: Upstream) -> None:
    headers, body = stream_request(events=5, interval=0.01)
    headers["x-api-key"] = ALICE
    response, collector = await send(keyed.url + "/chat/completions", b"POST", headers, body)
    await timeout(collector.done)
    assert collector.complete and collector.body.endswith(b"data: [DONE]\n\n")


@pytest.mark.parametrize(
    "target",
    [
        b"//evil.example/models",
        b"/../models",
        b"/v1/../../models",
        b"/%2e%2e/models",
        b"/.%2E/models",
        b"/v1%2f..%2fmodels",
        b"/v1/%252e%252e/models",
        b"/v1\\..\\models",
    ],
)
@pytest_twisted.ensureDeferred
async def test_path_escapes_get_400_and_reach_no_upstream(
    proxy: Any, upstream: Upstream, target: bytes
) -> None:
    client = await exchange(
        proxy.url, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert client.status == 400, client.answer
    assert _error(client.body)["code"] == "invalid_path"
    assert upstream.fake.received == []


def _limited(make_proxy: Any, upstream: Upstream, **limits: Any) -> Any:
    return make_proxy(upstream.url, access=AccessConfig(limits=RequestLimits(**limits)))


@pytest_twisted.ensureDeferred
async def test_declared_body_over_the_limit_gets_413_before_it_is_sent(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = _limited(make_proxy, upstream, max_body=1000)
    client = await connect(proxy.url)
    # Only the head is sent: the answer must not wait for the body.
    client.send(
        b"POST /chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    await timeout(client.closed, 10)
    assert client.status == 413, client.answer
    assert b"100 Continue" not in client.answer
    assert _error(client.body)["code"] == "request_too_large"
    assert upstream.fake.received == []


@pytest_twisted.ensureDeferred
async def test_chunked_body_is_cut_at_the_limit_with_413(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy = _limited(make_proxy, upstream, max_body=1000)
    client = await connect(proxy.url)
    client.send(
        b"POST /chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    client.send(b"258\r\n" + b"a" * 600 + b"\r\n")
    client.send(b"258\r\n" + b"a" * 600 + b"\r\n")
    # The chunk that crosses the limit ends it; the rest is never read.
    await timeout(client.closed, 10)
    assert client.status == 413, client.answer
    assert upstream.fake.received == []


@pytest_twisted.ensureDeferred
async def test_body_at_the_limit_is_forwarded(make_proxy: Any, upstream: Upstream) -> None:
    proxy = _limited(make_proxy, upstream, max_body=1000)
    response, _ = await fetch(proxy.url + "/x", b"POST", {"x-fake-mode": "echo"}, b"b" * 1000)
    assert response.code == 200
    assert upstream.fake.received[-1].body == b"b" * 1000


@pytest_twisted.ensureDeferred
async def test_too_many_or_too_large_headers_get_431(make_proxy: Any, upstream: Upstream) -> None:
    proxy = _limited(make_proxy, upstream, max_headers=20, max_head_bytes=4096)
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(21))
    large = b"X-Big: " + b"v" * 5000 + b"\r\n"
    for extra in (many, large):
        client = await exchange(
            proxy.url, b"GET /models HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n"
        )
        assert client.status == 431, client.answer
        assert _error(client.body)["code"] == "headers_too_large"
    client = await exchange(proxy.url, b"GET /" + b"m" * 5000 + b" HTTP/1.1\r\n\r\n")
    assert client.status == 414, client.answer
    assert upstream.fake.received == []
    response, _ = await fetch(proxy.url + "/models", headers={f"x-h{i}": "v" for i in range(15)})
    assert response.code == 200
    _, metrics = await fetch(proxy.url + "/_proxy/metrics")
    assert 'copilot_proxy_request_outcomes_total{outcome="refused"} 3.0' in metrics.decode()


@pytest_twisted.ensureDeferred
async def test_slowloris_is_dropped_while_a_stream_goes_on(
    make_proxy: Any, upstream: Upstream
) -> None:
    from twisted.internet import reactor
    from twisted.internet.task import LoopingCall

    proxy = _limited(make_proxy, upstream, head_timeout=1.0)
    headers, body = stream_request(events=60, interval=0.05)
    response, collector = await send(proxy.url + "/chat/completions", b"POST", headers, body)
    slow = await connect(proxy.url)
    silent = await connect(proxy.url)
    silent.send(b"GE")
    head = iter([b"GET /models HTTP/1.1\r\n"] + [b"X-Slow-%d: 1\r\n" % i for i in range(1000)])
    # One header line every 0.1 s: each resets an idle timeout, none
    # finishes the head.
    trickle = LoopingCall(lambda: slow.send(next(head)))
    trickle.clock = reactor
    trickle.start(0.1)
    try:
        await timeout(slow.closed, 10)
    finally:
        trickle.stop()
    assert slow.status == 408, slow.answer
    await timeout(silent.closed, 10)
    assert silent.status == 408, "half a request line starts the clock too"
    assert not collector.done.called, "the stream should outlive the slow client"
    await timeout(collector.done, 10)
    assert collector.complete and collector.body.endswith(b"data: [DONE]\n\n")
    assert [r.path for r in client_requests(upstream.fake)] == ["/chat/completions"]


@pytest_twisted.ensureDeferred
async def test_refusals_on_the_messages_surface_have_the_anthropic_shape(
    keyed: Any, upstream: Upstream
) -> None:
    response, body = await fetch(
        keyed.url + "/v1/messages", b"POST", {"content-type": "application/json"}, b"{}"
    )
    assert response.code == 401
    assert json.loads(body) == {
        "type": "error",
        "error": {"type": "authentication_error", "message": json.loads(body)["error"]["message"]},
    }
    assert upstream.fake.received == []


def test_start_log_says_what_gets_through_and_warns_of_a_readable_keys_file(
    make_proxy: Any, upstream: Upstream, tmp_path: Path, log_events: list[dict[str, Any]]
) -> None:
    from copilot_proxy.access import Rate

    path = tmp_path / "keys"
    path.write_text(f"{ALICE} alice\n")
    path.chmod(0o644)
    make_proxy(upstream.url, access=AccessConfig(keys_file=str(path), rate=Rate(2, 1), burst=4))
    path.chmod(0o600)
    make_proxy(upstream.url, access=AccessConfig(keys_file=str(path), max_streams=3))
    logged = [formatEvent(e) for e in log_events]
    warnings = [line for line in logged if "can be read by other users" in line]
    assert len(warnings) == 1 and str(path) in warnings[0]
    summaries = [line for line in logged if line.startswith("access: ")]
    assert summaries == [
        "access: 1 client key(s); rate limit 2/s burst 4 per client; bodies up to 16777216 bytes",
        "access: 1 client key(s); at most 3 streams; bodies up to 16777216 bytes",
    ]
    assert not any(ALICE in line for line in logged)


@pytest_twisted.ensureDeferred
async def test_a_large_body_without_a_key_is_refused_before_it_is_read(
    keyed: Any, upstream: Upstream
) -> None:
    client = await connect(keyed.url)
    client.send(b"POST /chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n")
    await timeout(client.closed, 10)
    assert client.status == 401, client.answer
    assert b"www-authenticate: bearer" in client.answer.lower()
    assert _error(client.body)["code"] == "invalid_api_key"
    assert upstream.fake.received == []
    big = b"x" * 2_000_000
    response, _ = await fetch(
        keyed.url + "/x", b"POST", {"x-api-key": ALICE, "x-fake-mode": "echo"}, big
    )
    assert response.code == 200
    assert upstream.fake.received[-1].body == big


@pytest_twisted.ensureDeferred
async def test_malformed_requests_get_400_json_and_reach_no_upstream(
    proxy: Any, upstream: Upstream
) -> None:
    for head in (
        b"GARBAGE\r\n\r\n",
        b"GET /models HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
        b"POST /chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ):
        client = await exchange(proxy.url, head)
        assert client.status == 400, client.answer
        assert _error(client.body)["code"] == "bad_request"
    assert upstream.fake.received == []
