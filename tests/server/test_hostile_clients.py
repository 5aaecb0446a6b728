"""
Clients that send what no honest HTTP client sends, on raw loopback sockets
to the real proxy: bodies without a client key, methods that echo, framing
that two parsers could read two ways, heads at the edge of the limits.  Each
refusal is a JSON error with C{connection: close} that costs the upstream
nothing and reads nothing past the head.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, gatherResults

from copilot_proxy.access import AccessConfig, RequestLimits, parse_keys_env
from copilot_proxy.server import ProxySite

from .._helpers import Proxy, Upstream, fetch, timeout, until
from .._raw import RawClient, connect, exchange

KEY = "sk-carol-0123456789abcdef"
MIB = 1024 * 1024


def _headers(client: RawClient) -> dict[bytes, list[bytes]]:
    """The answer's header fields, by lower-case name."""
    head = client.answer.partition(b"\r\n\r\n")[0]
    found: dict[bytes, list[bytes]] = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        found.setdefault(name.strip().lower(), []).append(value.strip())
    return found


def _refusal(client: RawClient, status: int) -> dict[str, Any]:
    """Check a channel refusal (status, JSON, close) and return its body."""
    assert client.status == status, client.answer
    headers = _headers(client)
    assert headers[b"content-type"] == [b"application/json"]
    assert headers[b"connection"] == [b"close"]
    assert b"server" not in headers
    # The whole rest is one JSON document: no second answer follows.
    body: dict[str, Any] = json.loads(client.body)
    return body


def _openai_code(client: RawClient, status: int) -> str:
    error = _refusal(client, status)["error"]
    assert set(error) >= {"message", "type", "code"}
    return str(error["code"])


class _ReadCounter:
    """Counts the bytes each connection of a proxy read from its client."""

    def __init__(self, proxy: Proxy) -> None:
        site = proxy.service.port.factory  # type: ignore[attr-defined]
        assert isinstance(site, ProxySite)
        counts = self.counts = []
        base: Any = site.protocol

        class Counting(base):  # type: ignore[misc]
            def connectionMade(self) -> None:
                self.read_count = len(counts)
                counts.append(0)
                super().connectionMade()

            def dataReceived(self, data: bytes) -> None:
                counts[self.read_count] += len(data)
                super().dataReceived(data)

        site.protocol = Counting

    counts: list[int]


@pytest.fixture
def keyed(make_proxy: Any, upstream: Upstream, tmp_path: Path) -> Proxy:
    proxy: Proxy = make_proxy(
        upstream.url, access=AccessConfig(env_keys=tuple(parse_keys_env(KEY)))
    )
    return proxy


# Item 2: no body is read before the client key is checked ------------------


async def _unauthenticated_upload(url: str, size: int) -> RawClient:
    client = await connect(url)
    client.send(
        b"POST /chat/completions HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer sk-wrong-0123456789abcdef\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    # The whole body is handed to the client's transport at once: it goes
    # out as fast as the proxy reads it, until the proxy hangs up.
    client.send(b"%x\r\n" % size + b"x" * size + b"\r\n0\r\n\r\n")
    await until(lambda: b"\r\n\r\n" in client.answer, 30)
    return client


@pytest_twisted.ensureDeferred
async def test_unauthenticated_chunked_uploads_are_refused_before_their_body_is_read(
    keyed: Proxy, upstream: Upstream
) -> None:
    read = _ReadCounter(keyed)
    clients = await gatherResults(
        [Deferred.fromCoroutine(_unauthenticated_upload(keyed.url, 4 * MIB)) for _ in range(20)]
    )
    print(f"\nbytes read from 20 unauthenticated 4 MiB chunked uploads: {sum(read.counts)}")
    for client in clients:
        assert _openai_code(client, 401) == "invalid_api_key"
        assert _headers(client)[b"www-authenticate"] == [b'Bearer realm="copilot-proxy"']
    assert len(read.counts) == 20
    # At most one socket read (64 KiB) past the head, per connection.
    assert max(read.counts) <= 64 * 1024 + 512, read.counts
    for client in clients:
        await timeout(client.closed, 10)
    assert upstream.fake.received == []


@pytest_twisted.ensureDeferred
async def test_a_small_declared_body_without_a_key_is_refused_before_it_is_sent(
    keyed: Proxy, upstream: Upstream
) -> None:
    for target, key in ((b"/chat/completions", b"Authorization: Bearer nope"), (b"/x", b"")):
        client = await connect(keyed.url)
        # The head alone: the answer must not wait for the 1000 bytes.
        client.send(
            b"POST " + target + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
            b"Expect: 100-continue\r\n" + (key + b"\r\n" if key else b"") + b"\r\n"
        )
        await timeout(client.closed, 10)
        assert _openai_code(client, 401) == "invalid_api_key"
        assert b"100 Continue" not in client.answer
    assert upstream.fake.received == []


@pytest_twisted.ensureDeferred
async def test_an_unauthenticated_body_to_the_messages_surface_gets_anthropic_401(
    keyed: Proxy, upstream: Upstream
) -> None:
    client = await connect(keyed.url)
    client.send(
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: sk-ant-wrong\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
    )
    await timeout(client.closed, 10)
    body = _refusal(client, 401)
    assert body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"
    assert _headers(client)[b"www-authenticate"] == [b'Bearer realm="copilot-proxy"']
    assert upstream.fake.received == []


@pytest_twisted.ensureDeferred
async def test_a_valid_key_still_sends_its_chunked_body_upstream(
    keyed: Proxy, upstream: Upstream
) -> None:
    body = b"y" * (3 * MIB)
    client = await connect(keyed.url)
    client.send(
        b"POST /x HTTP/1.1\r\nHost: x\r\nx-api-key: " + KEY.encode() + b"\r\n"
        b"x-fake-mode: echo\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    client.send(b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
    await timeout(client.closed, 30)
    assert client.status == 200, client.answer[:500]
    assert upstream.fake.received[-1].body == body


@pytest_twisted.ensureDeferred
async def test_the_admin_pages_keep_their_key_rules_and_read_no_unauthenticated_body(
    keyed: Proxy, upstream: Upstream
) -> None:
    response, _ = await fetch(keyed.url + "/_proxy/healthz")
    assert response.code == 200, "health stays open without a key"
    response, _ = await fetch(keyed.url + "/_proxy/metrics")
    assert response.code == 401
    client = await connect(keyed.url)
    client.send(b"POST /_proxy/metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
    await timeout(client.closed, 10)
    assert _openai_code(client, 401) == "invalid_api_key"
    key = {"Authorization": f"Bearer {KEY}"}
    response, _ = await fetch(keyed.url + "/_proxy/metrics", b"POST", key, b"{}")
    assert response.code == 405, "with a key, the pages answer as ever"
    assert upstream.fake.received == []


# Item 4: methods and framing that must not pass ----------------------------

SMUGGLED = b"GET /models HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("method", [b"TRACE", b"TRACK"])
@pytest_twisted.ensureDeferred
async def test_trace_and_track_get_405_and_are_never_forwarded(
    proxy: Proxy, upstream: Upstream, method: bytes
) -> None:
    client = await exchange(proxy.url, method + b" /chat/completions HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _openai_code(client, 405) == "method_not_allowed"
    allow = _headers(client)[b"allow"][0]
    assert b"GET" in allow and b"POST" in allow and b"TRACE" not in allow
    client = await exchange(proxy.url, method + b" /v1/messages HTTP/1.1\r\nHost: x\r\n\r\n")
    body = _refusal(client, 405)
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert upstream.fake.received == []


@pytest_twisted.ensureDeferred
async def test_methods_are_case_sensitive(proxy: Proxy, upstream: Upstream) -> None:
    # "trace" is no TRACE (RFC 9110 section 9.1): an unknown method, which is
    # forwarded like any other.
    client = await exchange(
        proxy.url, b"trace /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert client.status == 200, client.answer
    assert [r.method for r in upstream.fake.received] == ["trace"]


@pytest.mark.parametrize(
    "framing",
    [
        b"Transfer-Encoding: identity\r\n",
        b"Transfer-Encoding: gzip, chunked\r\n",
        b"Transfer-Encoding: chunked, identity\r\n",
        b"Transfer-Encoding: chunked, chunked\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
        b"Transfer-Encoding: \r\n",
        b"Content-Length: 38\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 38\r\n",
        b"Content-Length: 38\r\nTransfer-Encoding: identity\r\n",
    ],
)
@pytest_twisted.ensureDeferred
async def test_transfer_codings_other_than_one_final_chunked_get_400(
    proxy: Proxy, upstream: Upstream, framing: bytes
) -> None:
    client = await exchange(
        proxy.url,
        b"POST /chat/completions HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n" + SMUGGLED,
    )
    assert _openai_code(client, 400) in ("bad_framing", "bad_request")
    assert upstream.fake.received == []


@pytest_twisted.ensureDeferred
async def test_transfer_encoding_on_http_1_0_gets_400(proxy: Proxy, upstream: Upstream) -> None:
    client = await exchange(
        proxy.url,
        b"POST /x HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    )
    assert _openai_code(client, 400) == "bad_framing"
    assert upstream.fake.received == []


@pytest.mark.parametrize(
    "head",
    [
        b"GET /models HTTP/1.1\r\n\r\n",
        b"GET /models HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /models HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
        b"GET /models HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /models HTTP/1.1\r\nHost: evil.example/x\r\n\r\n",
        b"GET /models HTTP/1.1\r\nHost: user@evil.example\r\n\r\n",
    ],
)
@pytest_twisted.ensureDeferred
async def test_a_missing_duplicate_or_malformed_host_gets_400(
    proxy: Proxy, upstream: Upstream, head: bytes
) -> None:
    client = await exchange(proxy.url, head)
    assert _openai_code(client, 400) == "bad_host"
    assert upstream.fake.received == []


@pytest_twisted.ensureDeferred
async def test_http_1_0_needs_no_host(proxy: Proxy, upstream: Upstream) -> None:
    client = await exchange(proxy.url, b"GET /models HTTP/1.0\r\n\r\n")
    assert client.status == 200, client.answer
    assert [r.path for r in upstream.fake.received] == ["/models"]


def _chunked_post(size_line: bytes) -> bytes:
    return (
        b"POST /x HTTP/1.1\r\nHost: x\r\nx-fake-mode: echo\r\nConnection: close\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + size_line + b"\r\nhello\r\n0\r\n\r\n"
    )


@pytest_twisted.ensureDeferred
async def test_a_chunk_size_of_more_than_16_hex_digits_gets_400(
    proxy: Proxy, upstream: Upstream
) -> None:
    for size in (b"0" * 16 + b"5", b"0" * 40 + b"5;ext=1", b"1" + b"0" * 16):
        client = await exchange(proxy.url, _chunked_post(size))
        assert _openai_code(client, 400) == "bad_framing"
    assert upstream.fake.received == []
    client = await exchange(proxy.url, _chunked_post(b"0" * 15 + b"5"))
    assert client.status == 200, client.answer
    assert upstream.fake.received[-1].body == b"hello"


@pytest_twisted.ensureDeferred
async def test_options_asterisk_is_answered_by_the_proxy_itself(
    proxy: Proxy, upstream: Upstream
) -> None:
    client = await exchange(
        proxy.url, b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert client.status == 200, client.answer
    headers = _headers(client)
    assert b"server" not in headers
    assert b"GET" in headers[b"allow"][0] and b"TRACE" not in headers[b"allow"][0]
    assert headers[b"content-length"] == [b"0"]
    assert client.body == b""
    # Only OPTIONS may ask about '*'.
    client = await exchange(proxy.url, b"GET * HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _openai_code(client, 400) == "not_a_forward_proxy"
    assert upstream.fake.received == []


@pytest_twisted.ensureDeferred
async def test_options_asterisk_keeps_the_connection_open(
    proxy: Proxy, upstream: Upstream
) -> None:
    client = await exchange(
        proxy.url,
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert client.answer.startswith(b"HTTP/1.1 200 ")
    assert client.answer.count(b"HTTP/1.1 200 ") == 2
    assert [r.path for r in upstream.fake.received] == ["/models"]


def _with_headers(count: int) -> bytes:
    """A request whose head holds exactly C{count} header lines."""
    lines = [b"Host: x", b"Connection: close"]
    lines += [b"X-H%d: v" % i for i in range(count - len(lines))]
    return b"GET /models HTTP/1.1\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


@pytest.mark.parametrize("limit", [20, None])
@pytest_twisted.ensureDeferred
async def test_the_header_count_limit_admits_exactly_its_number(
    make_proxy: Any, upstream: Upstream, limit: int | None
) -> None:
    limits = RequestLimits() if limit is None else RequestLimits(max_headers=limit)
    proxy = make_proxy(upstream.url, access=AccessConfig(limits=limits))
    n = limits.max_headers
    client = await exchange(proxy.url, _with_headers(n))
    assert client.status == 200, client.answer
    client = await exchange(proxy.url, _with_headers(n + 1))
    assert _openai_code(client, 431) == "headers_too_large"
    assert f"at most {n} headers" in json.loads(client.body)["error"]["message"]
    assert len(upstream.fake.received) == 1


@pytest_twisted.ensureDeferred
async def test_head_refusals_are_counted_as_refused(proxy: Proxy, upstream: Upstream) -> None:
    for head in (
        b"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
    ):
        await exchange(proxy.url, head)
    _, metrics = await fetch(proxy.url + "/_proxy/metrics")
    assert 'copilot_proxy_request_outcomes_total{outcome="refused"} 3.0' in metrics.decode()
    assert upstream.fake.received == []
