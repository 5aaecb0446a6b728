"""
The GET cache end to end: hits with Age, expiry, coalesced misses, and what
is never cached.
"""

from __future__ import annotations

import gzip
import json
from typing import Any, cast

import pytest_twisted
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import Clock
from twisted.web.client import Agent
from twisted.web.http_headers import Headers
from twisted.web.test.requesthelper import DummyRequest

from copilot_proxy.access import AccessConfig, ResponseCache, parse_keys_env
from copilot_proxy.testing.fake_upstream import MODELS
from copilot_proxy.web import ProxyRequest

from .._helpers import Upstream, fetch, timeout, until

KEY = "sk-alice-0123456789abcdef"


def _ids() -> list[str]:
    return [m["id"] for m in MODELS["data"]]


def _listed(body: bytes) -> list[str]:
    """The ids of a model list as a client gets it (annotated by the proxy)."""
    return [m["id"] for m in json.loads(body)["data"]]


def _cached(make_proxy: Any, upstream: Upstream, **access: Any) -> tuple[Any, Clock]:
    proxy = make_proxy(upstream.url, access=AccessConfig(cache_ttl=300, **access))
    clock = Clock()
    clock.advance(1000)
    cache = proxy.service.gate.cache
    cache._reactor = clock  # the cache's own clock decides TTL and Age
    return proxy, clock


@pytest_twisted.ensureDeferred
async def test_models_are_served_from_memory_with_age_until_the_ttl(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy, clock = _cached(make_proxy, upstream)
    first, body = await fetch(proxy.url + "/models")
    assert first.code == 200 and _listed(body) == _ids()
    assert not first.headers.hasHeader(b"age")
    clock.advance(42)
    again, cached = await fetch(proxy.url + "/v1/models")
    assert again.code == 200 and cached == body
    assert again.headers.getRawHeaders(b"age") == [b"42"]
    assert again.headers.getRawHeaders(b"content-type") == [b"application/json"]
    assert len(upstream.fake.received) == 1
    clock.advance(300)
    late, _ = await fetch(proxy.url + "/models")
    assert not late.headers.hasHeader(b"age")
    assert len(upstream.fake.received) == 2


@pytest_twisted.ensureDeferred
async def test_twenty_concurrent_misses_make_one_upstream_request(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy, _ = _cached(make_proxy, upstream)
    misses = [
        Deferred.fromCoroutine(fetch(proxy.url + "/models", headers={"x-fake-delay": "0.3"}))
        for _ in range(20)
    ]
    answers = await timeout(gatherResults(misses), 10)
    assert [r.code for r, _ in answers] == [200] * 20
    assert all(_listed(body) == _ids() for _, body in answers)
    assert len(upstream.fake.received) == 1


@pytest_twisted.ensureDeferred
async def test_waiters_are_still_served_when_the_first_client_leaves(
    make_proxy: Any, upstream: Upstream
) -> None:
    from twisted.internet import reactor

    proxy, _ = _cached(make_proxy, upstream)
    slow = Headers({b"x-fake-delay": [b"30"]})
    leader = Agent(reactor).request(b"GET", (proxy.url + "/models").encode(), slow)
    await until(lambda: len(upstream.fake.received) == 1)
    followers = [
        Deferred.fromCoroutine(fetch(proxy.url + "/models", headers={"x-fake-delay": "0.5"}))
        for _ in range(5)
    ]
    waiting = proxy.service.gate.cache._leaders
    key = (upstream.url.encode() + b"/models", b"")
    await until(lambda: len(waiting.get(key, [])) == 5)
    leader.cancel()
    leader.addErrback(lambda _: None)
    answers = await timeout(gatherResults(followers), 10)
    assert [r.code for r, _ in answers] == [200] * 5
    assert len(upstream.fake.received) == 2


@pytest_twisted.ensureDeferred
async def test_no_cache_posts_errors_and_other_paths_go_upstream_every_time(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy, _ = _cached(make_proxy, upstream)
    for _ in range(2):
        response, _ = await fetch(proxy.url + "/models", headers={"x-fake-status": "500"})
        assert response.code == 500
    assert len(upstream.fake.received) == 2
    for _ in range(2):
        await fetch(proxy.url + "/models", headers={"cache-control": "no-cache"})
    assert len(upstream.fake.received) == 4
    for _ in range(2):
        await fetch(proxy.url + "/models", b"POST", {"x-fake-mode": "echo"}, b"{}")
        await fetch(proxy.url + "/other", headers={"x-fake-mode": "echo"})
    assert len(upstream.fake.received) == 8
    # The no-cache answer refreshed the entry: a plain GET is a hit.
    response, _ = await fetch(proxy.url + "/models")
    assert response.headers.hasHeader(b"age")
    assert len(upstream.fake.received) == 8


@pytest_twisted.ensureDeferred
async def test_encodings_are_cached_apart(make_proxy: Any, upstream: Upstream) -> None:
    proxy, _ = _cached(make_proxy, upstream)
    await fetch(proxy.url + "/models")
    gz = {"accept-encoding": "gzip", "x-fake-mode": "gzip"}
    response, body = await fetch(proxy.url + "/models", headers=gz)
    assert json.loads(gzip.decompress(body)) == MODELS
    response, again = await fetch(proxy.url + "/models", headers=gz)
    assert again == body and response.headers.getRawHeaders(b"content-encoding") == [b"gzip"]
    assert len(upstream.fake.received) == 2


@pytest_twisted.ensureDeferred
async def test_a_cache_hit_still_needs_a_client_key(make_proxy: Any, upstream: Upstream) -> None:
    proxy, _ = _cached(make_proxy, upstream, env_keys=tuple(parse_keys_env(KEY)))
    assert (await fetch(proxy.url + "/models", headers={"x-api-key": KEY}))[0].code == 200
    assert (await fetch(proxy.url + "/models"))[0].code == 401
    hit, _ = await fetch(proxy.url + "/models", headers={"x-api-key": KEY})
    assert hit.code == 200 and hit.headers.hasHeader(b"age")


def _answered(code: int, headers: dict[bytes, bytes]) -> ProxyRequest:
    # A stand-in with the parts of an answered request the cache reads.
    request = cast(ProxyRequest, DummyRequest([b"models"]))
    request.code = code
    request.code_message = b"Whatever"
    for name, value in headers.items():
        request.responseHeaders.setRawHeaders(name, [value])
    return request


def test_event_streams_cookies_and_errors_are_never_stored() -> None:
    cache = ResponseCache(Clock(), 300)
    never = [
        _answered(200, {b"content-type": b"text/event-stream; charset=utf-8"}),
        _answered(200, {b"content-type": b"application/json", b"set-cookie": b"a=b"}),
        _answered(200, {b"vary": b"*"}),
        _answered(404, {b"content-type": b"application/json"}),
        _answered(302, {b"location": b"/x"}),
    ]
    for request in never:
        assert cache._storable(request, b"{}") is None
    entry = cache._storable(
        _answered(200, {b"content-type": b"application/json", b"content-length": b"2"}), b"{}"
    )
    assert entry is not None
    assert [name for name, _ in entry.headers] == [b"Content-Type"]


@pytest_twisted.ensureDeferred
async def test_metrics_count_cache_hits_and_the_proxys_own_429s(
    make_proxy: Any, upstream: Upstream
) -> None:
    from copilot_proxy.access import Rate

    proxy, _ = _cached(make_proxy, upstream, rate=Rate(3, 3600), burst=3)
    for _ in range(4):
        await fetch(proxy.url + "/models")
    _, text = await fetch(proxy.url + "/_proxy/metrics")
    lines = text.decode().splitlines()
    assert 'copilot_proxy_cache_lookups_total{cache="models",result="hit"} 2.0' in lines
    assert 'copilot_proxy_cache_lookups_total{cache="models",result="miss"} 1.0' in lines
    assert 'copilot_proxy_rate_limited_total{by="proxy"} 1.0' in lines


@pytest_twisted.ensureDeferred
async def test_an_answer_is_not_served_for_another_upstream_base(
    make_proxy: Any, upstream: Upstream
) -> None:
    proxy, _ = _cached(make_proxy, upstream)
    await fetch(proxy.url + "/models")
    # The base follows the Copilot token's API host, so it may change live.
    proxy.service._upstream.base = upstream.url.encode() + b"/other-api"
    response, _ = await fetch(proxy.url + "/models")
    assert not response.headers.hasHeader(b"age")
    assert [r.path for r in upstream.fake.received] == ["/models", "/other-api/models"]
